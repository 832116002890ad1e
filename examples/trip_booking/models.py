"""What crosses the workflow/activity line (JSON in the workflow's history): add fields with
defaults, never rename one."""

from __future__ import annotations

from pydantic import BaseModel


class Leg(BaseModel):
    """One booking: a flight, a room, a car. `key` makes every call about it idempotent."""

    trip_id: str
    kind: str  # flight, hotel, car
    what: str  # "LH 123 FRA-LIS 2026-05-01", "Hotel Lisboa, 3 nights"
    price_cents: int

    @property
    def key(self) -> str:
        return f"{self.trip_id}:{self.kind}"


class Payment(BaseModel):
    trip_id: str
    card: str
    amount_cents: int

    @property
    def key(self) -> str:
        return f"{self.trip_id}:pay"


class Trip(BaseModel):
    trip_id: str
    traveller: str
    card: str
    flight: Leg
    hotel: Leg
    car: Leg | None = None

    @property
    def legs(self) -> list[Leg]:
        return [leg for leg in (self.flight, self.hotel, self.car) if leg]

    def payment(self) -> Payment:
        return Payment(trip_id=self.trip_id, card=self.card, amount_cents=sum(leg.price_cents for leg in self.legs))
