"""An in-memory stand-in for a service's state store, with the real one's ETag rules (a stale
ETag or an insert-if-absent that finds the row loses the race), for the services' unit tests."""

from __future__ import annotations

from apphost.statestore import ConcurrencyConflict, OptimisticStore, Write


class MemoryStore(OptimisticStore):
    def __init__(self, name: str = "memory-store"):
        super().__init__(name)
        self.rows: dict[str, tuple[str, int]] = {}
        self.transactions = 0

    def read(self, key, model):
        if key not in self.rows:
            return None, None
        value, etag = self.rows[key]
        return model.model_validate_json(value), str(etag)

    def read_many(self, keys, model):
        return {key: self.read(key, model) for key in keys}

    def transact(self, *writes: Write) -> None:
        for w in writes:
            current = self.rows.get(w.key)
            if (w.new and current) or (w.etag is not None and (not current or str(current[1]) != w.etag)):
                raise ConcurrencyConflict()
        for w in writes:
            self.rows[w.key] = (w.value.model_dump_json(), self.rows.get(w.key, ("", 0))[1] + 1)
        self.transactions += 1


class Aborted(Exception):
    """What `context.abort` raises here: args are (status code, message)."""


class Context:
    """The part of grpc.ServicerContext the servicers use."""

    def abort(self, code, message):
        raise Aborted(code, message)
