"""Admission control: a new order is refused at once (RESOURCE_EXHAUSTED, with a retry hint)
while too many sagas are at work, instead of queueing behind them until its caller times out.

"At work" means a saga that is using the stack now: from PLACED through COMPLETED or any other
end, except while it waits: for an approval (a parked saga costs nothing; there may be
thousands), or on a service that failed one of its steps (issue 22: during a shipping outage the
orders retrying their shipment filled the limit and every new order was refused, for the whole
shop, while they cost nothing). From a step's first technical failure until the step is answered
or the order's status changes, the saga waits out backoffs (the workflow's durable timers, the
sidecar's retries of the call) and makes calls that fail at once: it is "resting", and not
counted. Its first attempt at each step is counted, so a healthy stack is still bounded.

The count is kept in each order-service process, of the orders whose actors it hosts, as the
actor sees their status change; with replicas, actors spread evenly, so the limit is per
replica (a step's failure rests its order only where the activity ran: on another replica than
the actor's, the order stays counted). A process that restarts counts an order again at its next step, and an
order not seen for `forget_after_s` (its actor moved to another replica, say) is no longer
counted: the count is a load signal, never a record of orders.
"""

from __future__ import annotations

import re
import threading
import time

from order_service.domain import OrderStatus

RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"  # gRPC's trailer for "retry after this long"


class Admission:
    def __init__(self, limit: int, retry_after_ms: int = 500, forget_after_s: float = 120,
                 clock=time.monotonic):
        self.limit = limit  # 0: no limit
        self.retry_after_ms = retry_after_ms
        self._forget_after_s = forget_after_s
        self._clock = clock
        self._seen: dict[str, float] = {}  # order id -> when its actor last reported it at work
        self._status: dict[str, OrderStatus] = {}  # ... and the status it reported
        self._resting: set[str] = set()  # of those, the ones waiting on a service that failed them
        self._lock = threading.Lock()  # the API's threads ask, the actor's event loop tells

    def note(self, order_id: str, status: OrderStatus) -> None:
        """The order's status, as its actor just set (or found) it."""
        with self._lock:
            if self._status.get(order_id) != status:  # moved on: a new step, or the unwinding
                self._resting.discard(order_id)
            if status.terminal or status == OrderStatus.AWAITING_APPROVAL:
                self._forget(order_id)
            else:
                self._seen[order_id] = self._clock()
                self._status[order_id] = status

    def answered(self, order_id: str) -> None:
        """A step of the order got its answer (done, refused, or unknown after its deadline): at
        work again, if it was counted before. An order this process never counted (its actor
        lives on another replica) is left to that replica."""
        with self._lock:
            if order_id in self._seen:
                self._resting.discard(order_id)
                self._seen[order_id] = self._clock()

    def resting(self, order_id: str) -> None:
        """An attempt failed technically: the saga retries it after a backoff, until it is
        answered or the saga gives up on it (a new status)."""
        with self._lock:
            if order_id in self._seen:
                self._resting.add(order_id)

    def _forget(self, order_id: str) -> None:
        self._seen.pop(order_id, None)
        self._status.pop(order_id, None)
        self._resting.discard(order_id)

    def at_work(self) -> int:
        with self._lock:
            horizon = self._clock() - self._forget_after_s
            for order_id in [o for o, seen in self._seen.items() if seen < horizon]:
                self._forget(order_id)
            return len(self._seen) - len(self._resting)

    def refusal(self) -> str | None:
        """Why a new order must wait, or None when it may come in."""
        if not self.limit:
            return None
        at_work = self.at_work()
        if at_work < self.limit:
            return None
        return (f"{at_work} sagas are at work, the limit of this order-service replica is {self.limit} "
                f"(ORDERSAGA_MAX_ACTIVE_SAGAS): nothing was stored; retry in about {self.retry_after_ms} ms")


# How a store, or a sidecar waiting on one, says it is too busy now (SQLite's busy and locked
# errors, a deadline that ran out in a queue, daprd's own RESOURCE_EXHAUSTED). A call that failed
# so may succeed when retried: the client is told RESOURCE_EXHAUSTED, like a refusal, and never
# sees the store's own words (issue 22).
_OVERLOADED = re.compile(r"SQLITE_BUSY|SQLITE_LOCKED|database (table )?is locked|deadline.exceeded|"
                         r"RESOURCE_EXHAUSTED|too many requests", re.IGNORECASE)


def overloaded(error_text: str) -> bool:
    """Whether a failed call failed because something on its way was too busy."""
    return bool(_OVERLOADED.search(error_text or ""))


def busy_message(what: str, retry_after_ms: int) -> str:
    return (f"{what}: the stack is too busy to answer now; retry in about {retry_after_ms} ms "
            f"(the same request again changes nothing that was done)")


_admission = Admission(limit=0)


def configure(admission: Admission) -> None:
    """Called once by the composition root."""
    global _admission
    _admission = admission


def current() -> Admission:
    return _admission
