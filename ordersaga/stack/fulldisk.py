"""A full disk under one state store: the store moved onto a small tmpfs of its own, which a
ballast file then fills; deleting the ballast gives the space back.

- embedded (SQLite): the app's sidecars are stopped, the database file (and its WAL) moved onto
  the tmpfs and linked from where the component looks for it (SQLite follows the link and keeps
  its WAL beside the real file), and the sidecars started again; `fill` empties the WAL first
  (SQLite reuses a WAL in place, so a grown one would hide the full disk for a while);
- production (PostgreSQL): a tablespace on the tmpfs, and the store's table (`<prefix>state`)
  moved into it while everything runs, so only that store's writes meet the full disk (`fill`
  rewrites the table compactly first, so they meet it at once) (the WAL stays where it was: PostgreSQL answers
  the writer with an error instead of stopping).

Mounting needs root (the tests run as root; the message says so otherwise). `remove` puts the
store back where it was and unmounts; it runs even after a failed test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from ordersaga.stack import processes
from ordersaga.stack.layout import HOST, replica_name

PADDING_KEY = "ordersaga-disk-padding||"  # rows `fill` adds to a PostgreSQL store's table, and `free` removes
TABLE_PREFIX = {"order-service": "order_", "inventory-service": "inventory_", "payment-service": "payment_",
                "shipping-service": "shipping_"}


class DiskError(RuntimeError):
    """The small disk could not be set up or taken away; the message says why."""


class SmallDisk:
    def __init__(self, stack, app_id: str, size_mb: int = 32):
        self.stack, self.app_id, self.size_mb = stack, app_id, size_mb
        self.mount = stack.run_dir / "data" / "disks" / app_id
        self.ballast = self.mount / "ballast"
        self.profile = stack.state().profile
        self.tablespace = f"small_{app_id.split('-')[0]}"
        self.table = f"{TABLE_PREFIX[app_id]}state"

    # ---- set up and take away -----------------------------------------------------------------

    def install(self) -> "SmallDisk":
        if os.geteuid() != 0:
            raise DiskError("a full-disk test mounts a tmpfs: it needs root")
        self.mount.mkdir(parents=True, exist_ok=True)
        _run(["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m,mode=0755", "tmpfs", str(self.mount)])
        try:
            if self.profile == "production":
                self._install_tablespace()
            else:
                self._install_sqlite()
        except BaseException:
            self._unmount()
            raise
        return self

    def remove(self) -> None:
        """The store back on the stack's own disk, the tmpfs gone. Safe to call twice."""
        if not os.path.ismount(self.mount):
            return
        self.free()
        try:
            if self.profile == "production":
                self._remove_tablespace()
            else:
                self._remove_sqlite()
        finally:
            self._unmount()

    # ---- the fault ----------------------------------------------------------------------------

    def fill(self) -> int:
        """Fill what is left of the disk; the bytes written (the last write met ENOSPC). On
        PostgreSQL the table is first rewritten compactly (VACUUM FULL, in the room left for
        it), so its next writes need new pages, which the full disk refuses."""
        written = 0
        if self.profile == "embedded":
            self._truncate_wal()
        if self.profile == "production":
            size = self._query(f"SELECT pg_total_relation_size('{self.table}')")
            written += self._ballast(self.free_bytes() - 2 * size - (1 << 20))
            self._sql(f"VACUUM FULL {self.table}")
            written += self._ballast()
            return written + self._pad_table()
        return written + self._ballast()

    def _pad_table(self) -> int:
        """Rows under keys nobody reads, until the table's last page is full too (the insert
        that needs a new page fails): the store's next write then needs room the disk lacks."""
        import psycopg

        padded = 0
        with psycopg.connect(self._dsn(), autocommit=True, connect_timeout=10) as connection:
            while padded < 10_000:
                try:
                    connection.execute(f"INSERT INTO {self.table} (key, value) VALUES (%s, %s)",
                                       (f"{PADDING_KEY}{padded}", b"\0" * 1500))
                except psycopg.errors.DiskFull:
                    return padded * 1500
                padded += 1
        raise DiskError(f"{self.table} never met the full disk: is it in tablespace {self.tablespace}?")

    def _ballast(self, limit: int | None = None) -> int:
        written = 0
        fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            for size in (1 << 20, 4096, 512):  # big steps, then what is left of the last one
                chunk = b"\0" * size
                while limit is None or written + size <= limit:
                    try:
                        written += os.write(fd, chunk)
                    except OSError:
                        break
        finally:
            os.close(fd)
        return written

    def free(self) -> None:
        self.ballast.unlink(missing_ok=True)
        if self.profile == "production":
            self._sql(f"DELETE FROM {self.table} WHERE key LIKE '{PADDING_KEY}%'")

    def free_bytes(self) -> int:
        stats = os.statvfs(self.mount)
        return stats.f_bavail * stats.f_frsize

    # ---- SQLite (embedded) --------------------------------------------------------------------

    def _db(self) -> Path:
        return self.stack.run_dir / "data" / f"{self.app_id}.db"

    def _sidecars(self) -> list[str]:
        state = self.stack.state()
        return [f"{replica_name(self.app_id, i)}-daprd" for i in range(state.replicas)]

    def _with_sidecars_stopped(self, move) -> None:
        state = self.stack.state()
        for name in self._sidecars():
            processes.stop(state.processes[name], timeout=15)
        try:
            move()
        finally:
            self.stack.up(timeout=120)

    def _truncate_wal(self) -> None:
        """SQLite reuses its WAL file in place after a checkpoint, so a disk that fills beside a
        WAL grown earlier goes unnoticed until the WAL outgrows its old size: empty it first
        (a checkpoint that truncates it), so the store's next writes need new room."""
        import sqlite3
        from contextlib import closing

        with closing(sqlite3.connect(self._db(), timeout=10)) as db:  # closed: an open file keeps the tmpfs busy
            for _ in range(20):
                busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if not busy:
                    return
                time.sleep(0.2)
        raise DiskError(f"{self._db().name}: its WAL could not be emptied (the store stayed busy)")

    def _install_sqlite(self) -> None:
        def move() -> None:
            db = self._db()
            for suffix in ("", "-wal", "-shm"):
                source = Path(f"{db}{suffix}")
                if source.exists():
                    shutil.move(source, self.mount / source.name)
            db.symlink_to(self.mount / db.name)
        self._with_sidecars_stopped(move)

    def _remove_sqlite(self) -> None:
        def move() -> None:
            db = self._db()
            if db.is_symlink():
                db.unlink()
            for suffix in ("", "-wal", "-shm"):
                source = self.mount / f"{db.name}{suffix}"
                if source.exists():
                    shutil.move(source, Path(f"{db}{suffix}"))
        self._with_sidecars_stopped(move)

    # ---- PostgreSQL (production) ----------------------------------------------------------------

    def _dsn(self) -> str:
        from ordersaga.stack import postgres
        from ordersaga.stack.profiles import DATABASES

        state = self.stack.state()
        return postgres.connection_string(HOST, state.ports.postgres, state.postgres_password,
                                          DATABASES[self.app_id][0])

    def _sql(self, *statements: str) -> None:
        import psycopg

        with psycopg.connect(self._dsn(), autocommit=True, connect_timeout=10) as connection:
            for statement in statements:
                connection.execute(statement)

    def _query(self, statement: str):
        import psycopg

        with psycopg.connect(self._dsn(), autocommit=True, connect_timeout=10) as connection:
            return connection.execute(statement).fetchone()[0]

    def _install_tablespace(self) -> None:
        shutil.chown(self.mount, "postgres", "postgres")
        self._sql(f"CREATE TABLESPACE {self.tablespace} LOCATION '{self.mount}'",
                  f"ALTER TABLE {self.table} SET TABLESPACE {self.tablespace}")

    def _remove_tablespace(self) -> None:
        self._sql(f"ALTER TABLE {self.table} SET TABLESPACE pg_default", f"DROP TABLESPACE {self.tablespace}")

    def _unmount(self) -> None:
        for attempt in range(20):
            result = subprocess.run(["umount", str(self.mount)], capture_output=True, text=True)
            if result.returncode == 0 or not os.path.ismount(self.mount):
                break
            time.sleep(0.5)  # a process still closing its files
        else:
            raise DiskError(f"could not unmount {self.mount}: {result.stderr.strip()}")
        self.mount.rmdir()


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise DiskError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
