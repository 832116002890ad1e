"""order-service settings, read once from the environment by the composition root."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    approval_threshold_cents: int = 1000 * 100
    approval_timeout_s: int = 86400
    step_timeout_s: int = 30
    # An order still in flight this long after it was placed is flagged (timeline + event).
    order_deadline_s: int = 86400 + 3600
    # The order's check-up (OrderActor) first comes this long after placing: a saga that a stop
    # kept from starting is started then, and what the order still owes is paid.
    start_check_s: int = 60
    # Admission control (order_service/admission.py): new orders are refused while this many
    # sagas are at work on one order-service replica (0: never). The default kept the p95 of
    # accepted orders under 2 s (1.1 s) at 4x the capacity of the 2-core reference machine, with
    # no loss of throughput; 12 and 16 did not (docs/performance.md, "Overload").
    max_active_sagas: int = 8
    retry_after_ms: int = 500
    # Open WatchOrder streams one replica serves at once; more are refused (RESOURCE_EXHAUSTED).
    max_watchers: int = 64
    # How long an OrderActor stays in memory (order-service's and its sidecar's) after its last
    # call: a waiting order costs memory only while it is being worked on (docs/performance.md).
    actor_idle_s: int = 300
    # An order in flight whose saga made no progress for this long is stuck (`list --stuck`,
    # the ordersaga_stuck_orders metric); the scan that counts them runs this often (0: never).
    stuck_after_s: int = 600
    stuck_scan_s: int = 60
    # How long the engine keeps a finished saga's history (the Configuration's retention, which
    # `up` sets from the same variable): a terminal order's saga reads PURGED after it.
    workflow_retention_s: int = 86400

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ.get
        approval_timeout_s = int(float(env("ORDERSAGA_APPROVAL_TIMEOUT_S", "86400")))
        return cls(
            approval_threshold_cents=round(float(env("ORDERSAGA_APPROVAL_THRESHOLD", "1000")) * 100),
            approval_timeout_s=approval_timeout_s,
            step_timeout_s=int(float(env("ORDERSAGA_STEP_TIMEOUT_S", "30"))),
            order_deadline_s=int(float(env("ORDERSAGA_ORDER_DEADLINE_S", str(approval_timeout_s + 3600)))),
            start_check_s=int(float(env("ORDERSAGA_START_CHECK_S", str(cls.start_check_s)))),
            max_active_sagas=int(env("ORDERSAGA_MAX_ACTIVE_SAGAS", str(cls.max_active_sagas))),
            retry_after_ms=int(env("ORDERSAGA_RETRY_AFTER_MS", str(cls.retry_after_ms))),
            max_watchers=int(env("ORDERSAGA_MAX_WATCHERS", str(cls.max_watchers))),
            actor_idle_s=int(float(env("ORDERSAGA_ACTOR_IDLE_S", str(cls.actor_idle_s)))),
            stuck_after_s=int(float(env("ORDERSAGA_STUCK_AFTER_S", str(cls.stuck_after_s)))),
            stuck_scan_s=int(float(env("ORDERSAGA_STUCK_SCAN_S", str(cls.stuck_scan_s)))),
            workflow_retention_s=int(float(env("ORDERSAGA_WORKFLOW_RETENTION_S", str(cls.workflow_retention_s)))),
        )
