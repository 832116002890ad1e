"""What ListOrders, the stuck scan and bulk actions ask of the orders index: pure functions over
its rows, no I/O and no clock (the time comes in as `now`).

Each order has one row in the index (order_service/index.py), written by its actor whenever the
row changes: a handful of fields, enough to filter, sort and page without asking any actor or
the workflow engine. A query reads every row, keeps those that match, sorts them newest first
(placed time, then order id: a stable order, which new orders do not disturb) and answers one
page of at most `MAX_PAGE_SIZE`, with a token for the next: the key of the page's last row and
a digest of the query, so a token of another query is refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta, timezone

from order_service.domain import ID_PATTERN, IN_FLIGHT_LABEL, OrderState, OrderStatus, saga_instance_id

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


class BadQuery(ValueError):
    """A query the API refuses with INVALID_ARGUMENT; the message names the field."""


# ---- the rows -------------------------------------------------------------------------------------

class IndexRow:
    """An order as the index knows it. Written as compact JSON (short keys: 100,000 rows are
    read by every query, so parsing them is the query's main cost: a plain class with slots);
    a row of an older release is a bare label (`legacy`: IN_FLIGHT or a terminal status)
    until its actor writes it again (the stuck scan asks it to)."""

    # field -> its key in the stored JSON
    KEYS = {"status": "s", "customer": "c", "reason": "r", "placed": "p", "since": "t", "version": "v",
            "total_cents": "$", "instance": "i", "parked": "k", "due": "u", "decided": "d", "final": "f"}
    __slots__ = tuple(KEYS) + ("legacy",)

    def __init__(self, status: str, customer: str = "", reason: str = "", placed: str = "", since: str = "",
                 version: str = "", total_cents: int = 0, instance: str = "", parked: bool = False, due: str = "",
                 decided: str = "", final: str = "", legacy: bool = False):
        self.status = status
        self.customer = customer
        self.reason = reason
        self.placed = placed  # ISO-8601 UTC
        self.since = since  # when it entered its status
        self.version = version  # its order saga's version
        self.total_cents = total_cents
        self.instance = instance  # the workflow in charge, when it is not `order-saga-<id>`
        self.parked = parked  # no workflow waits: the decision starts the saga's second half
        self.due = due  # a parked order's end of the wait for a decision
        self.decided = decided  # when its decision (or timeout, or cancel) was taken, while it waits
        self.final = final  # a terminal order's workflow's last runtime status
        self.legacy = legacy

    def __eq__(self, other) -> bool:
        return isinstance(other, IndexRow) and all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __repr__(self) -> str:
        return f"IndexRow({', '.join(f'{n}={getattr(self, n)!r}' for n in self.__slots__ if getattr(self, n))})"

    @classmethod
    def of(cls, order: OrderState) -> "IndexRow":
        default_instance = saga_instance_id(order.order_id)
        return cls(
            status=order.status.value, customer=order.request.customer_id, reason=order.reason,
            placed=order.placed_time, since=order.since, version=order.saga_version,
            total_cents=order.request.total_cents,
            instance="" if order.saga_instance_id == default_instance else order.saga_instance_id,
            parked=order.parked, due=order.approval_due if order.parked else "",
            decided=order.decided_at if order.status in (OrderStatus.PLACED, OrderStatus.RESERVING,
                                                          OrderStatus.AWAITING_APPROVAL) else "",
            final=order.saga_final_status if order.status.terminal else "")

    def to_json(self) -> str:
        data = {short: getattr(self, name) for name, short in self.KEYS.items()
                if getattr(self, name) or name == "status"}
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def parse(cls, value) -> "IndexRow":
        """A row as stored: its JSON object, or an older release's bare label."""
        if isinstance(value, str):
            return cls(value, legacy=True)
        get = value.get
        return cls(get("s", ""), get("c", ""), get("r", ""), get("p", ""), get("t", ""), get("v", ""),
                   get("$", 0), get("i", ""), get("k", False), get("u", ""), get("d", ""), get("f", ""))

    @property
    def terminal(self) -> bool:
        return self.status in _TERMINAL

    def instance_of(self, order_id: str) -> str:
        return self.instance or saga_instance_id(order_id)


_TERMINAL = frozenset(s.value for s in OrderStatus if s.terminal)
_IN_FLIGHT = frozenset(s.value for s in OrderStatus if not s.terminal)


# ---- the query --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ListFilter:
    """What a ListOrders (or a bulk action) selects. Empty fields select everything."""

    status: str = ""
    customer: str = ""
    reason: str = ""
    placed_after: str = ""  # ISO-8601; inclusive
    placed_before: str = ""  # ISO-8601; exclusive
    saga_version: str = ""
    in_status_for_s: int = 0  # in its status for at least this long
    text: str = ""  # in the order id or the customer id, any case
    stuck: bool = False  # only orders whose saga made no progress for `stuck_after_s` (see `stuck_reason`)

    def validated(self) -> "ListFilter":
        """The filter with its values normalised; BadQuery names the first bad field."""
        status = self.status.strip().upper()
        if status and status not in OrderStatus.__members__:
            raise BadQuery(f"status: unknown status {self.status[:64]!r}; one of {', '.join(OrderStatus)}")
        for name in ("customer", "saga_version"):
            value = getattr(self, name)
            if value and not re.fullmatch(ID_PATTERN, value):
                raise BadQuery(f"{name}: {value[:64]!r} is not an id (1-64 letters, digits, '.', '_', ':' or '-')")
        if self.reason and not re.fullmatch(r"[A-Z_]{1,64}", self.reason.strip().upper()):
            raise BadQuery(f"reason: {self.reason[:64]!r} is not a reason (such as SHIPPING_FAILED)")
        for name in ("placed_after", "placed_before"):
            value = getattr(self, name)
            if value and parse_time(value) is None:
                raise BadQuery(f"{name}: {value[:64]!r} is not an ISO-8601 time (such as 2025-01-31T12:00:00Z)")
        if self.in_status_for_s < 0:
            raise BadQuery("in_status_for_s: must not be negative")
        if len(self.text) > 64:
            raise BadQuery("text: at most 64 characters")
        return ListFilter(status=status, customer=self.customer, reason=self.reason.strip().upper(),
                          placed_after=self.placed_after, placed_before=self.placed_before,
                          saga_version=self.saga_version, in_status_for_s=self.in_status_for_s,
                          text=self.text.strip().lower(), stuck=self.stuck)

    def digest(self) -> str:
        """Identifies the query (not the page) in its page tokens."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def describe(self) -> str:
        """The filter in words, for "no orders match ..." answers."""
        parts = [f"{k.replace('_', ' ')} {v}" for k, v in asdict(self).items() if v and k not in ("stuck",)]
        if self.stuck:
            parts.append("stuck")
        return ", ".join(parts) or "no filter"


@dataclass(frozen=True)
class StuckRules:
    """When an order counts as stuck: its saga made no progress for `after_s` (it stayed in a
    status the saga moves on from by itself), or a parked order's wait ended `after_s` ago and
    nothing took it on, or a decision was taken `after_s` ago and nothing acted on it."""

    after_s: int = 600


def stuck_reason(order_id: str, row: IndexRow, now: datetime, rules: StuckRules) -> str:
    """Why the order looks stuck from its row alone ("" if it does not). The engine may say
    more (STALLED, gone): the API asks it for the orders it lists (`engine_reason`)."""
    if row.terminal or row.legacy:
        return ""
    late = timedelta(seconds=rules.after_s)
    if row.status == OrderStatus.AWAITING_APPROVAL.value:
        if row.decided and _older(row.decided, now, late):
            return f"DECISION_NOT_TAKEN: decided at {row.decided}, still waiting"
        if row.parked and row.due and _older(row.due, now, late) and not row.decided:
            return f"APPROVAL_OVERDUE: its wait ended at {row.due} and nothing timed it out"
        return ""
    if _older(row.since or row.placed, now, late):
        return f"NO_PROGRESS: {row.status} since {row.since or row.placed}"
    return ""


def engine_reason(row_reason: str, engine_status: str | None, status: str) -> str:
    """The stuck reason once the workflow engine was asked about the order's workflow."""
    if engine_status == "STALLED":
        return "STALLED: its workflow's version is not deployed (docs/changing-the-saga.md)"
    if engine_status is None:
        if status == OrderStatus.PLACED.value:
            return "NOT_STARTED: its saga never started (the check-up starts it)"
        return f"SAGA_GONE: no workflow in charge ({row_reason})"
    if engine_status in ("COMPLETED", "FAILED", "TERMINATED"):
        return f"SAGA_ENDED: its workflow is {engine_status} without telling the order (the check-up notices it)"
    if engine_status == "PENDING":
        return f"NOT_RUNNING: its workflow is PENDING ({row_reason})"
    return f"{row_reason} (workflow {engine_status})"


def _status_matches(row: IndexRow, status: str) -> bool:
    """An older release's IN_FLIGHT label may be any status in flight (its actor says which)."""
    if row.legacy and row.status == IN_FLIGHT_LABEL:
        return status in _IN_FLIGHT
    return row.status == status


def matches(order_id: str, row: IndexRow, wanted: ListFilter, now: datetime, rules: StuckRules) -> bool:
    if wanted.status and not _status_matches(row, wanted.status):
        return False
    if wanted.customer and row.customer != wanted.customer:
        return False
    if wanted.reason and row.reason != wanted.reason:
        return False
    if wanted.saga_version and row.version != wanted.saga_version:
        return False
    if wanted.placed_after or wanted.placed_before:
        placed = parse_time(row.placed)
        if placed is None:
            return False
        if wanted.placed_after and placed < parse_time(wanted.placed_after):
            return False
        if wanted.placed_before and placed >= parse_time(wanted.placed_before):
            return False
    if wanted.in_status_for_s and not _older(row.since or row.placed, now, timedelta(seconds=wanted.in_status_for_s)):
        return False
    if wanted.text and wanted.text not in order_id.lower() and wanted.text not in row.customer.lower():
        return False
    if wanted.stuck and not stuck_reason(order_id, row, now, rules):
        return False
    return True


@dataclass
class Page:
    rows: list[tuple[str, IndexRow]]  # (order id, row), newest first
    next_token: str
    matching: int  # every row the query matches, over all pages
    counts: dict[str, int]  # rows the query matches but for its status, by status


def select(rows: dict[str, IndexRow], wanted: ListFilter, *, page_size: int = 0, token: str = "",
           now: datetime, rules: StuckRules = StuckRules()) -> Page:
    """One page of the rows `wanted` selects, after the page `token` ended (BadQuery for a
    token of another query, or one that is not a token)."""
    size = page_size or DEFAULT_PAGE_SIZE
    if size < 0 or size > MAX_PAGE_SIZE:
        raise BadQuery(f"page_size: at most {MAX_PAGE_SIZE}")
    after = _decode(token, wanted) if token else None
    any_status = replace(wanted, status="")
    counts: dict[str, int] = {}
    keys = []
    for order_id, row in rows.items():
        if not matches(order_id, row, any_status, now, rules):
            continue
        counts[row.status] = counts.get(row.status, 0) + 1
        if not wanted.status or _status_matches(row, wanted.status):
            keys.append((row.placed, order_id))
    keys.sort(reverse=True)
    start = _first_after(keys, after) if after is not None else 0
    chosen = keys[start:start + size]
    more = start + size < len(keys)
    next_token = _encode(chosen[-1], wanted) if more and chosen else ""
    return Page(rows=[(order_id, rows[order_id]) for _, order_id in chosen], next_token=next_token,
                matching=len(keys), counts=counts)


def _first_after(keys: list[tuple[str, str]], after: tuple[str, str]) -> int:
    """The position of the first key below `after` in keys sorted in descending order."""
    low, high = 0, len(keys)
    while low < high:
        middle = (low + high) // 2
        if keys[middle] >= after:
            low = middle + 1
        else:
            high = middle
    return low


def _encode(key: tuple[str, str], wanted: ListFilter) -> str:
    data = json.dumps({"q": wanted.digest(), "k": list(key)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _decode(token: str, wanted: ListFilter) -> tuple[str, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        digest, (placed, order_id) = data["q"], data["k"]
        if not (isinstance(placed, str) and isinstance(order_id, str)):
            raise ValueError
    except (ValueError, TypeError, KeyError):
        raise BadQuery("page_token: not a page token of ListOrders") from None
    if digest != wanted.digest():
        raise BadQuery("page_token: it belongs to another query (its filters differ); start again without it")
    return placed, order_id


# ---- time ---------------------------------------------------------------------------------------------

def parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError, AttributeError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _older(iso_time: str, now: datetime, than: timedelta) -> bool:
    moment = parse_time(iso_time)
    return moment is not None and now - moment >= than


def counts_by_reason(rows: dict[str, IndexRow], now: datetime, rules: StuckRules) -> dict[str, int]:
    """How many orders look stuck, by the first word of their reason (the stuck metric)."""
    counts: dict[str, int] = {}
    for order_id, row in rows.items():
        reason = stuck_reason(order_id, row, now, rules)
        if reason:
            kind = reason.split(":", 1)[0]
            counts[kind] = counts.get(kind, 0) + 1
    return counts
