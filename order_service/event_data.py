"""The data of an inbound CloudEvent as a model, or a ValueError that says what is wrong with it:
what the approvals and the order intake subscriptions both need before they act."""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from order_service.domain import describe

M = TypeVar("M", bound=BaseModel)


def parse(data: object, model: type[M], prefix: str = "") -> M:
    """`data` as delivered (bytes, text, or already decoded JSON) validated as `model`. The
    ValueError's message names the problem: not JSON, not an object, or the first bad field."""
    if isinstance(data, (bytes, bytearray, str)):
        if not data.strip():  # also what a CloudEvent with `"data": null` or no data arrives as
            raise ValueError("data is empty: the event carries no data")
        try:
            data = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"data is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"data must be a JSON object, not {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ValueError(f"{prefix}{describe(error, subject='data')}") from None
