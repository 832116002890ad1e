"""Stock rules, free of I/O: what a reservation, release or commit does to a SKU's levels."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Stock(BaseModel):
    sku: str
    on_hand: int = Field(ge=0)
    reserved: int = Field(default=0, ge=0)

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def reserve(self, quantity: int) -> "Stock | None":
        """The stock after holding `quantity`, or None when there is not enough available."""
        if quantity > self.available:
            return None
        return self.model_copy(update={"reserved": self.reserved + quantity})

    def release(self, quantity: int) -> "Stock":
        return self.model_copy(update={"reserved": self.reserved - quantity})

    def commit(self, quantity: int) -> "Stock":
        return self.model_copy(update={"on_hand": self.on_hand - quantity, "reserved": self.reserved - quantity})

    def set_on_hand(self, on_hand: int) -> "Stock":
        """Admin: set what is on the shelf; reservations stay (and may exceed it until released)."""
        return self.model_copy(update={"on_hand": on_hand})


class Reservation(BaseModel):
    """What one idempotency key did, stored so a repeat returns the same answer."""

    sku: str
    quantity: int
    state: str  # "reserved", "rejected", "released" or "committed"


class Line(BaseModel):
    sku: str
    quantity: int


class LinesReservation(BaseModel):
    """What one ReserveLines key did to all of an order's lines, stored so a repeat (and the
    release or commit of the same key) finds it."""

    lines: list[Line]
    state: str  # "reserved", "rejected", "released" or "committed"
    short: list[str] = []  # the SKUs that were short, when rejected
