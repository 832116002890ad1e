"""A service's own Dapr state store, changed only under optimistic concurrency.

The services keep two kinds of rows: balances (a SKU's stock, a customer's account) and
operation records keyed by the caller's idempotency key. A change reads the balance with its
ETag and writes balance and record in one state transaction conditioned on that ETag, so two
concurrent changes can never both win: the loser re-reads and decides again (`retrying`).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable, TypeVar

import grpc
from dapr.clients import DaprClient
from dapr.conf import settings
from dapr.proto import api_service_v1, api_v1, common_v1
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
_MAX_ATTEMPTS = 100
log = logging.getLogger("apphost.statestore")


class ConcurrencyConflict(Exception):
    """Someone else changed a row between our read and our write."""


@dataclass(frozen=True)
class Write:
    """One row of a transaction: conditioned on `etag`, or on the row not existing yet
    (`new=True`), or (neither) an unconditional upsert."""

    key: str
    value: BaseModel
    etag: str | None = None
    new: bool = False

    def to_proto(self) -> api_v1.TransactionalStateOperation:
        item = common_v1.StateItem(key=self.key, value=self.value.model_dump_json().encode())
        if self.etag is not None:
            item.etag.value = self.etag
        elif self.new:
            # First-write without an ETag is insert-if-absent in the SQLite (and SQL) stores.
            item.options.concurrency = common_v1.StateOptions.CONCURRENCY_FIRST_WRITE
        return api_v1.TransactionalStateOperation(operationType="upsert", request=item)


class OptimisticStore:
    def __init__(self, store_name: str, client_factory: Callable[[], DaprClient] = DaprClient):
        self.store_name = store_name
        # Created on first use: DaprClient() waits for the sidecar, and the sidecar waits for
        # this app's server to listen, which happens after construction.
        self._client_factory = client_factory
        self._client: DaprClient | None = None
        self._raw: api_service_v1.DaprStub | None = None
        self._lock = threading.Lock()

    @property
    def _dapr(self) -> DaprClient:
        with self._lock:
            if self._client is None:
                self._client = self._client_factory()
            return self._client

    def _stub(self) -> api_service_v1.DaprStub:
        with self._lock:
            if self._raw is None:
                self._raw = api_service_v1.DaprStub(
                    grpc.insecure_channel(f"{settings.DAPR_RUNTIME_HOST}:{settings.DAPR_GRPC_PORT}")
                )
            return self._raw

    def read(self, key: str, model: type[M]) -> tuple[M | None, str | None]:
        item = self._dapr.get_state(self.store_name, key)
        if not item.data:
            return None, None
        return model.model_validate_json(item.data), (item.etag or None)

    def read_many(self, keys: list[str], model: type[M]) -> dict[str, tuple[M | None, str | None]]:
        """Several rows in one call to the sidecar, each with its ETag (as `read`)."""
        reply = self._dapr.get_bulk_state(self.store_name, keys, parallelism=len(keys))
        rows = {}
        for item in reply.items:
            if item.error:
                raise RuntimeError(f"reading {item.key} from {self.store_name}: {item.error}")
            rows[item.key] = (model.model_validate_json(item.data), item.etag or None) if item.data else (None, None)
        return rows

    def transact(self, *writes: Write) -> None:
        """All writes or none. The SDK's transaction call cannot carry concurrency options
        (needed for insert-if-absent), so this goes to the Dapr gRPC API directly."""
        request = api_v1.ExecuteStateTransactionRequest(
            storeName=self.store_name, operations=[w.to_proto() for w in writes]
        )
        metadata = (("dapr-api-token", settings.DAPR_API_TOKEN),) if settings.DAPR_API_TOKEN else None
        try:
            self._stub().ExecuteStateTransaction(request, metadata=metadata, timeout=30)
        except grpc.RpcError as error:
            if is_write_conflict(error) or _is_busy(error):
                raise ConcurrencyConflict() from error
            raise

    def retrying(self, attempt: Callable[[], T]) -> T:
        """Run `attempt` (read, decide, transact) again while it loses concurrency races."""
        for number in range(1, _MAX_ATTEMPTS + 1):
            try:
                return attempt()
            except ConcurrencyConflict:
                log.debug("concurrency conflict on %s, attempt %d", self.store_name, number)
        raise RuntimeError(f"gave up after {_MAX_ATTEMPTS} concurrency conflicts on {self.store_name}")


def _is_busy(error: Exception) -> bool:
    """SQLite's single writer stayed busy past the store's busyTimeout: try again, like a race."""
    return "database is locked" in str(error).lower()


def is_write_conflict(error: Exception) -> bool:
    """A conditional write lost to another writer. SQLite reports a stale ETag and an
    insert-if-absent that found the row alike (an ETag mismatch); PostgreSQL v2 reports the
    latter as "no item was updated" (its upsert matched a live row and changed nothing)."""
    code = getattr(error, "code", lambda: None)()
    text = str(error).lower()
    return code == grpc.StatusCode.ABORTED or "etag" in text or "no item was updated" in text
