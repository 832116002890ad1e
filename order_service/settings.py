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

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ.get
        approval_timeout_s = int(float(env("ORDERSAGA_APPROVAL_TIMEOUT_S", "86400")))
        return cls(
            approval_threshold_cents=round(float(env("ORDERSAGA_APPROVAL_THRESHOLD", "1000")) * 100),
            approval_timeout_s=approval_timeout_s,
            step_timeout_s=int(float(env("ORDERSAGA_STEP_TIMEOUT_S", "30"))),
            order_deadline_s=int(float(env("ORDERSAGA_ORDER_DEADLINE_S", str(approval_timeout_s + 3600)))),
        )
