"""PostgreSQL for the production profile: a cluster of the stack's own, in its run directory.

The server comes from the distribution (Debian's `postgresql` package: `initdb` and `postgres`
under /usr/lib/postgresql/<major>/bin); when it is missing, `ensure_postgres` installs it with
apt-get where it can (root, apt-get present) and otherwise says what to install.
`ORDERSAGA_PG_BIN_DIR` points at binaries of your own.

The cluster listens on 127.0.0.1 only, on the stack's port, without a Unix socket, with a
superuser `ordersaga` whose password is generated per run directory (kept in stack.json) and
checked with SCRAM. Each service gets a database of its own. PostgreSQL refuses to run as root,
so when ordersaga runs as root the server runs as the `postgres` system user (the package
creates it). When that user cannot reach the run directory (a checkout under a private home,
mode 0700, as root in CI or a container), the cluster's data directory goes where it can:
`cluster_dir` picks a folder under that user's home, named after the run directory (see there).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import psycopg
from psycopg import sql

SUPERUSER = "ordersaga"
MIN_MAJOR = 13  # state.postgresql v2 needs gen_random_uuid() in core (13+); Debian 12 ships 15
DEBIAN_PACKAGE = "postgresql"
SYSTEM_USER = "postgres"  # who runs the server when we are root


class PostgresUnavailable(RuntimeError):
    """The server binaries are missing or unusable; the message says what to install."""


@dataclass(frozen=True)
class PostgresServer:
    bin_dir: Path
    major: int
    run_as: str | None  # a system user to run initdb and postgres as (we are root), or None

    def tool(self, name: str) -> str:
        return str(self.bin_dir / name)


def ensure_postgres(log: Callable[[str], None] = print, install: bool = True) -> PostgresServer:
    """Find the server binaries (installing Debian's package when allowed and possible)."""
    bin_dir = _find_bin_dir()
    if bin_dir is None and install and _can_install():
        _apt_install(log)
        bin_dir = _find_bin_dir()
    if bin_dir is None:
        raise PostgresUnavailable(
            "PostgreSQL server binaries (initdb, postgres) not found; the production profile needs "
            f"PostgreSQL {MIN_MAJOR} or newer. Install Debian's `{DEBIAN_PACKAGE}` package "
            f"(`sudo apt-get install {DEBIAN_PACKAGE}`), or point ORDERSAGA_PG_BIN_DIR at a folder with "
            "initdb and postgres."
        )
    major = _major_version(bin_dir)
    if major < MIN_MAJOR:
        raise PostgresUnavailable(f"PostgreSQL {major} in {bin_dir} is too old: {MIN_MAJOR} or newer is needed")
    run_as = None
    if os.geteuid() == 0:
        if not _user_exists(SYSTEM_USER):
            raise PostgresUnavailable(
                f"PostgreSQL refuses to run as root and there is no `{SYSTEM_USER}` user to run it as: "
                f"install Debian's `{DEBIAN_PACKAGE}` package (it creates the user) or run ordersaga as another user."
            )
        run_as = SYSTEM_USER
    return PostgresServer(bin_dir=bin_dir, major=major, run_as=run_as)


def _find_bin_dir() -> Path | None:
    explicit = os.environ.get("ORDERSAGA_PG_BIN_DIR")
    candidates = [Path(explicit)] if explicit else []
    if not explicit:
        # Debian keeps each major version's server apart from PATH; take the newest.
        debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _int(p.parent.name), reverse=True)
        candidates += debian
        found = shutil.which("initdb")
        if found:
            candidates.append(Path(found).resolve().parent)
    for directory in candidates:
        if all((directory / tool).is_file() for tool in ("initdb", "postgres")):
            return directory
    return None


def _int(text: str) -> int:
    return int(text) if text.isdigit() else -1


def _major_version(bin_dir: Path) -> int:
    out = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True, text=True).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    if not match:
        raise PostgresUnavailable(f"{bin_dir / 'postgres'} --version said nothing useful: {out!r}")
    return int(match.group(1))


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _can_install() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def _apt_install(log: Callable[[str], None]) -> None:
    log(f"PostgreSQL is not installed: installing Debian's `{DEBIAN_PACKAGE}` package with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "--no-install-recommends",
                                                DEBIAN_PACKAGE]):
        proc = subprocess.run(argv, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
            raise PostgresUnavailable(f"`{' '.join(argv)}` failed (exit {proc.returncode}):\n{tail}\n"
                                      f"Install the `{DEBIAN_PACKAGE}` package yourself and run again.")
    log("  installed")


# ---- the cluster ------------------------------------------------------------------------------

def cluster_dir(server: PostgresServer, preferred: Path, password: str, log: Callable[[str], None] = print) -> Path:
    """Where the cluster's data directory goes: `preferred` (in the run directory) when the
    server's user can reach it, else a folder of its own under that user's home
    (`~postgres/ordersaga/<run directory's hash>-<password's hash>`: another run directory, or
    the same one made anew with a new password, gets a cluster of its own). The choice is said
    once, when the cluster is made."""
    if not server.run_as or (preferred / "PG_VERSION").is_file() or _reachable(server.run_as, preferred):
        return preferred
    home = Path(pwd.getpwnam(server.run_as).pw_dir)
    if not _reachable(server.run_as, home):
        return preferred  # nowhere better: init_cluster says what to do
    run_key = hashlib.sha256(str(preferred.resolve()).encode()).hexdigest()[:10]
    target = home / "ordersaga" / f"{run_key}-{hashlib.sha256(password.encode()).hexdigest()[:10]}" / "data"
    if not (target / "PG_VERSION").is_file():
        # Earlier clusters of this run directory (made for a stack since removed) are garbage now.
        for stale in target.parent.parent.glob(f"{run_key}-*"):
            if stale != target.parent:
                shutil.rmtree(stale, ignore_errors=True)
        log(f"PostgreSQL runs as `{server.run_as}`, which cannot reach {preferred.parent} (a folder above it is "
            f"private): its data directory is {target} instead.")
    target.parent.mkdir(parents=True, exist_ok=True)
    (target.parent.parent).chmod(0o700)
    shutil.chown(target.parent.parent, server.run_as, server.run_as)
    shutil.chown(target.parent, server.run_as, server.run_as)
    return target


def _reachable(user: str, path: Path) -> bool:
    """`user` may enter `path`'s closest existing folder (and every folder above it)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return subprocess.run(["test", "-x", str(probe)], **_as_user(user)).returncode == 0


def init_cluster(server: PostgresServer, data_dir: Path, password: str) -> None:
    """Create the cluster once (`initdb`); a data directory that holds one is left as it is."""
    if (data_dir / "PG_VERSION").is_file():
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    pwfile = data_dir.parent / "postgres.pw"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password + "\n")
    try:
        if server.run_as:
            _hand_over(server.run_as, data_dir, pwfile)
        argv = [server.tool("initdb"), "-D", str(data_dir), "-U", SUPERUSER, f"--pwfile={pwfile}",
                "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8"]
        proc = subprocess.run(argv, capture_output=True, text=True, **_as_user(server.run_as))
    finally:
        pwfile.unlink(missing_ok=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise PostgresUnavailable(f"initdb failed (exit {proc.returncode}) for {data_dir}:\n{tail}")


def _hand_over(user: str, data_dir: Path, pwfile: Path) -> None:
    """Give the system user the data directory, and check it can reach it at all: a run
    directory under a private home or temp folder (mode 0700) is out of its reach."""
    shutil.chown(data_dir, user, user)
    shutil.chown(pwfile, user, user)
    probe = subprocess.run(["test", "-w", str(data_dir)], **_as_user(user))
    if probe.returncode != 0:
        raise PostgresUnavailable(
            f"PostgreSQL runs as the `{user}` user (it refuses root), and `{user}` cannot reach {data_dir}: "
            "a folder above it is private. Use a run directory it can reach (ORDERSAGA_HOME), e.g. under /tmp "
            "or a project folder with mode 0755."
        )


def _as_user(user: str | None) -> dict:
    return {"user": user, "group": user, "extra_groups": []} if user else {}


def server_argv(server: PostgresServer, data_dir: Path, host: str, port: int) -> list[str]:
    """The postmaster in the foreground, logging to stderr (the stack's log file)."""
    settings = {
        "listen_addresses": host,
        "port": str(port),
        "unix_socket_directories": "",  # TCP on loopback only: no socket file to place or clean
        # Every sidecar keeps a pool of connections (pgx: 4 on two cores); replicas multiply them.
        "max_connections": "300",
        "logging_collector": "off",
        "log_line_prefix": "%m [%p] ",
        "log_min_messages": "warning",
        # Durability stays PostgreSQL's default: fsync on, synchronous_commit on (one WAL flush
        # per commit, shared by concurrent commits: group commit).
    }
    return [server.tool("postgres"), "-D", str(data_dir)] + [f"-c{k}={v}" for k, v in settings.items()]


def connection_string(host: str, port: int, password: str, database: str) -> str:
    """A key=value DSN, as both pgx (Dapr's state.postgresql) and psycopg read it."""
    return f"host={host} port={port} user={SUPERUSER} password={password} dbname={database} sslmode=disable"


class PostgresRefused(RuntimeError):
    """The server is up but refuses us (a wrong password, a cluster made for another stack)."""


def is_ready(host: str, port: int, password: str) -> bool:
    """True once the server takes our queries; False while it starts; PostgresRefused when it
    answers with a refusal that waiting will not change."""
    try:
        with psycopg.connect(connection_string(host, port, password, "postgres"), connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except (psycopg.errors.InvalidPassword, psycopg.errors.InvalidAuthorizationSpecification) as error:
        raise PostgresRefused(f"PostgreSQL refuses user {SUPERUSER}: {error}".strip()) from None
    except psycopg.OperationalError as error:
        if "password authentication failed" in str(error) or "no pg_hba.conf entry" in str(error):
            raise PostgresRefused(f"PostgreSQL refuses user {SUPERUSER}: {str(error).strip()}") from None
        return False  # not listening yet, or still recovering
    except psycopg.Error:
        return False


def ensure_databases(host: str, port: int, password: str, names: list[str]) -> None:
    """One database per service; idempotent."""
    with psycopg.connect(connection_string(host, port, password, "postgres"), autocommit=True,
                         connect_timeout=5) as conn:
        existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        for name in names:
            if name not in existing:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
