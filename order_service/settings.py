"""order-service settings, read once from the environment by the composition root."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    approval_threshold_cents: int = 1000 * 100
    approval_timeout_s: int = 86400

    @classmethod
    def from_env(cls) -> "Settings":
        threshold_units = float(os.environ.get("ORDERSAGA_APPROVAL_THRESHOLD", "1000"))
        return cls(
            approval_threshold_cents=round(threshold_units * 100),
            approval_timeout_s=int(float(os.environ.get("ORDERSAGA_APPROVAL_TIMEOUT_S", "86400"))),
        )
