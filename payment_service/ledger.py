"""Credit and payments, free of I/O: what authorize, capture, void and refund do to an account."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Account(BaseModel):
    customer_id: str
    limit_cents: int = Field(ge=0)
    held_cents: int = Field(default=0, ge=0)
    captured_cents: int = Field(default=0, ge=0)

    @property
    def available_cents(self) -> int:
        """Credit not yet held or spent."""
        return self.limit_cents - self.held_cents - self.captured_cents

    def hold(self, amount: int) -> "Account | None":
        """The account after holding `amount`, or None when that exceeds the available credit."""
        if amount > self.available_cents:
            return None
        return self.model_copy(update={"held_cents": self.held_cents + amount})

    def release_hold(self, amount: int) -> "Account":
        return self.model_copy(update={"held_cents": self.held_cents - amount})

    def capture(self, amount: int) -> "Account":
        return self.model_copy(
            update={"held_cents": self.held_cents - amount, "captured_cents": self.captured_cents + amount}
        )

    def refund(self, amount: int) -> "Account":
        return self.model_copy(update={"captured_cents": self.captured_cents - amount})


class Payment(BaseModel):
    """The ledger entry of one idempotency key."""

    customer_id: str
    amount_cents: int
    state: str  # AUTHORIZED, DECLINED, CAPTURED, VOIDED, REFUNDED
