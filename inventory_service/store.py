"""inventory-service's state in its own Dapr state store, changed only under optimistic concurrency.

Each change reads the SKU's stock with its ETag and writes stock and reservation record in one
state transaction conditioned on that ETag, so concurrent orders can never oversell: a loser of
the race re-reads and decides again.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

import grpc
from dapr.clients import DaprClient
from dapr.clients.grpc._request import TransactionalStateOperation

from inventory_service.stock import Reservation, Stock

STORE = "inventory-store"
_MAX_ATTEMPTS = 50
log = logging.getLogger("inventory_service.store")


class ConcurrencyConflict(Exception):
    pass


def _stock_key(sku: str) -> str:
    return f"stock|{sku}"


def _reservation_key(idempotency_key: str) -> str:
    return f"reservation|{idempotency_key}"


class InventoryStore:
    def __init__(self, client_factory: Callable[[], DaprClient] = DaprClient):
        # Created on first use: DaprClient() waits for the sidecar, which in turn waits for
        # this app's server to listen.
        self._client_factory = client_factory
        self._client: DaprClient | None = None
        self._lock = threading.Lock()

    @property
    def _dapr(self) -> DaprClient:
        with self._lock:
            if self._client is None:
                self._client = self._client_factory()
            return self._client

    def get_stock(self, sku: str) -> tuple[Stock, str | None]:
        item = self._dapr.get_state(STORE, _stock_key(sku))
        if not item.data:
            return Stock(sku=sku, on_hand=0), None
        return Stock.model_validate_json(item.data), item.etag or None

    def get_reservation(self, idempotency_key: str) -> Reservation | None:
        item = self._dapr.get_state(STORE, _reservation_key(idempotency_key))
        return Reservation.model_validate_json(item.data) if item.data else None

    def write(self, stock: Stock, etag: str | None, key: str | None = None, reservation: Reservation | None = None) -> None:
        """Write stock (conditioned on `etag`) and, in the same transaction, a reservation record."""
        ops = [TransactionalStateOperation(_stock_key(stock.sku), stock.model_dump_json(), etag=etag)]
        if reservation is not None and key is not None:
            ops.append(TransactionalStateOperation(_reservation_key(key), reservation.model_dump_json()))
        try:
            self._dapr.execute_state_transaction(STORE, ops)
        except grpc.RpcError as error:  # DaprGrpcError is one
            if _is_etag_conflict(error):
                raise ConcurrencyConflict() from error
            raise

    def save_reservation(self, key: str, reservation: Reservation) -> None:
        self._dapr.save_state(STORE, _reservation_key(key), reservation.model_dump_json())

    def with_retry(self, action: Callable[[], object]):
        """Run `action` again while it loses optimistic-concurrency races."""
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                return action()
            except ConcurrencyConflict:
                log.debug("concurrency conflict, attempt %d", attempt)
        raise RuntimeError(f"gave up after {_MAX_ATTEMPTS} concurrency conflicts")


def _is_etag_conflict(error: Exception) -> bool:
    code = getattr(error, "code", lambda: None)()
    text = str(error).lower()
    return code == grpc.StatusCode.ABORTED or "etag" in text
