"""The travel services the activities call: an in-memory stand-in here (a real one calls the
airline's, the hotel's, the bank's APIs), with what every real one needs for a saga: each call
idempotent by its key, and a cancel that also stops a booking arriving after it (a tombstone),
because a step that timed out may still land."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Agency:
    refuse: set[str] = field(default_factory=set)  # kinds of booking that say no (sold out, declined)
    booked: dict[str, str] = field(default_factory=dict)  # key -> confirmation
    cancelled: set[str] = field(default_factory=set)  # keys cancelled: a late booking under one is refused
    charged: dict[str, int] = field(default_factory=dict)  # key -> cents

    def book(self, key: str, kind: str, what: str) -> str | None:
        """The confirmation, or None for a definite no. Again under the same key: the same answer."""
        if key in self.booked:
            return self.booked[key]
        if key in self.cancelled or kind in self.refuse:
            return None
        self.booked[key] = f"{kind.upper()}-{len(self.booked) + 1}"
        return self.booked[key]

    def cancel(self, key: str) -> None:
        self.booked.pop(key, None)
        self.cancelled.add(key)

    def charge(self, key: str, amount_cents: int) -> bool:
        if "card" in self.refuse:
            return False
        self.charged.setdefault(key, amount_cents)
        return True

    def refund(self, key: str) -> None:
        self.charged.pop(key, None)
