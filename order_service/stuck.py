"""The stuck scan: how many orders' sagas made no progress for longer than ORDERSAGA_STUCK_AFTER_S,
by reason (the `ordersaga_stuck_orders` gauge), every ORDERSAGA_STUCK_SCAN_S.

It reads the orders index (every row, as a ListOrders does) and judges each row by
order_service/queries.py's rules alone: the counts cost no actor and no engine call.
`ordersaga list --stuck` lists the same orders with the engine's word on each (STALLED, gone,
PENDING...). The scan also asks orders whose row is of an older release to write theirs (a few
hundred per scan). With replicas, every replica counts the whole index: read one of them.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from order_service import index, queries
from order_service.sidecar import ActorCallError, Actors

log = logging.getLogger("order_service.stuck")
REINDEXED_PER_SCAN = 200
REASONS = ("NO_PROGRESS", "APPROVAL_OVERDUE", "DECISION_NOT_TAKEN")


class StuckOrders(Collector):
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.scanned = False

    def collect(self):
        gauge = GaugeMetricFamily("ordersaga_stuck_orders", "Orders whose saga made no progress for longer than "
                                  "ORDERSAGA_STUCK_AFTER_S, by reason (the whole index: every replica "
                                  "reports the same)", labels=["reason"])
        if self.scanned:
            for reason in sorted(set(REASONS) | set(self.counts)):
                gauge.add_metric([reason], self.counts.get(reason, 0))
        yield gauge


STUCK = StuckOrders()
REGISTRY.register(STUCK)


class Scan:
    """A daemon thread running `scan_once` every `every_s` seconds (0: never)."""

    def __init__(self, api, actors: Actors, every_s: int):
        self._api, self._actors, self._every_s = api, actors, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stuck-scan", daemon=True)

    def start(self) -> None:
        if self._every_s > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                self.scan_once()
            except Exception as error:  # noqa: BLE001 - the store or sidecar away: next time
                log.warning("stuck scan failed: %s", str(error).splitlines()[0][:300] if str(error) else error)

    def scan_once(self) -> dict[str, int]:
        rows = index.read_all(self._api._sidecar)
        STUCK.counts = queries.counts_by_reason(rows, datetime.now(timezone.utc), self._api._stuck)
        STUCK.scanned = True
        legacy = [order_id for order_id, row in rows.items() if row.legacy][:REINDEXED_PER_SCAN]
        for order_id in legacy:
            try:
                if self._actors.call(order_id, "settle") is None:
                    index.forget_sync(self._api._sidecar, order_id)  # a placing that stopped before the save
            except ActorCallError as error:
                log.info("order=%s step=reindex outcome=LATER detail=%s", order_id, error)
        if STUCK.counts or legacy:
            log.info("stuck scan: %d orders, stuck %s, %d rows of an older release rewritten", len(rows),
                     STUCK.counts or "none", len(legacy))
        return STUCK.counts
