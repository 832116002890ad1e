"""Dead letters: list what order-service refused (approvals and order requests, with the reason),
and send chosen ones back to their topic once the cause is fixed (`ordersaga deadletters`, the
console's dead-letters page).

Letters are read straight from the broker (JetStream's dead-letter stream, Kafka's topics), each
with a stable id (`js:<sequence>`, `kafka:<partition>:<offset>`). A redrive publishes each chosen
letter's event as it came, through a sidecar, under the id `<event id>.redrive-<redrive id>`:
the same event is sent at most once per redrive (two letters of one event, a redelivered
refusal say, send it once), and the broker's duplicate window and order-service's idempotence do
the rest. What is still invalid comes back to the dead-letter topic with its reason, under that
id, so a listing says which redrive sent it.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict, dataclass
from typing import Callable

from order_service.topics import (
    APPROVALS_DEAD_LETTER_TOPIC,
    APPROVALS_TOPIC,
    REQUESTS_DEAD_LETTER_TOPIC,
    REQUESTS_TOPIC,
)

# kind -> (its dead-letter topic, the topic its events go back to)
KINDS = {"approvals": (APPROVALS_DEAD_LETTER_TOPIC, APPROVALS_TOPIC),
         "requests": (REQUESTS_DEAD_LETTER_TOPIC, REQUESTS_TOPIC)}
_REDRIVE = re.compile(r"\.redrive-([0-9a-f]+)")
FORWARDED = "forwarded by Dapr after the deliveries ran out (no reason recorded)"


@dataclass(frozen=True)
class Letter:
    id: str  # where it is on the broker: js:<sequence> or kafka:<partition>:<offset>
    kind: str  # approvals or requests
    event_id: str  # the refused event's CloudEvent id
    time: str
    reason: str
    order_id: str
    data: str  # the refused event's data, as it came

    @property
    def original_id(self) -> str:
        """The first event's id, before any redrive: a redrive sends each at most once."""
        return _REDRIVE.split(self.event_id)[0]

    @property
    def redriven_by(self) -> str:
        """The redrive that sent this event when it was refused again ("" for a first refusal)."""
        found = _REDRIVE.findall(self.event_id)
        return found[-1] if found else ""

    def as_json(self) -> dict:
        return {**asdict(self), "redriven_by": self.redriven_by}


def parse(kind: str, letter_id: str, body: str) -> Letter:
    """One dead-letter message: order-service's DeadLetter inside Dapr's CloudEvent envelope, or an
    event Dapr forwarded as it came (its deliveries ran out)."""
    envelope = _json(body)
    envelope = envelope if isinstance(envelope, dict) else {}
    data = envelope.get("data", body)
    if isinstance(data, str) and data.lstrip().startswith("{"):
        data = _json(data) or data
    time = str(envelope.get("time", ""))
    if isinstance(data, dict) and "reason" in data and "event_id" in data:
        payload = data.get("data", "")
        payload = payload if isinstance(payload, str) else json.dumps(payload)
        return Letter(id=letter_id, kind=kind, event_id=str(data.get("event_id", "")), time=time,
                      reason=str(data.get("reason", "")), order_id=_order_id(payload), data=payload)
    payload = data if isinstance(data, str) else json.dumps(data)
    return Letter(id=letter_id, kind=kind, event_id=str(envelope.get("id", "")), time=time, reason=FORWARDED,
                  order_id=_order_id(payload), data=payload)


def read(feed, kinds: tuple[str, ...] = tuple(KINDS), timeout: float = 10) -> list[Letter]:
    """Every dead letter of `kinds` on the broker now, oldest first per kind."""
    return [parse(kind, letter_id, body) for kind in kinds
            for letter_id, body in feed.read_numbered(KINDS[kind][0], timeout=timeout)]


def select(letters: list[Letter], *, ids: tuple[str, ...] = (), kind: str = "", reason: str = "",
           order_id: str = "") -> list[Letter]:
    """The letters named by id, or all that match every filter given (`reason`: any part of it)."""
    chosen = [letter for letter in letters if not ids or letter.id in ids]
    return [letter for letter in chosen
            if (not kind or letter.kind == kind) and (not reason or reason.lower() in letter.reason.lower())
            and (not order_id or letter.order_id == order_id)]


Publish = Callable[[str, bytes, str, str], None]  # (topic, data, content type, event id)


def redrive(letters: list[Letter], publish: Publish, redrive_id: str = "") -> tuple[str, list[tuple[Letter, str, str]]]:
    """Send each letter's event back to its topic, once per event: the redrive's id and what
    happened to each letter (SENT, SKIPPED as a repeat in this redrive, or FAILED: why)."""
    redrive_id = redrive_id or uuid.uuid4().hex[:10]
    report, sent = [], set()
    for letter in letters:
        key = (letter.kind, letter.original_id)
        if key in sent:
            report.append((letter, "SKIPPED", "the same event is sent once per redrive"))
            continue
        sent.add(key)
        content_type = "application/json" if _json(letter.data) is not None else "text/plain"
        try:
            publish(KINDS[letter.kind][1], letter.data.encode(), content_type,
                    f"{letter.original_id}.redrive-{redrive_id}")
        except Exception as error:  # noqa: BLE001 - the sidecar's HTTP API: any failure is reported
            report.append((letter, "FAILED", str(error)[:200]))
            continue
        report.append((letter, "SENT", f"to {KINDS[letter.kind][1]}"))
    return redrive_id, report


def _json(text: str):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def _order_id(payload: str) -> str:
    data = _json(payload)
    value = data.get("order_id", "") if isinstance(data, dict) else ""
    return value if isinstance(value, str) else ""
