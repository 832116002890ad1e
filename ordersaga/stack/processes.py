"""Start, watch and stop the stack's OS processes, by pid, with one log file each.

A pid alone can be reused by an unrelated process after ours died, so every record keeps the
process's start time from /proc and a pid only counts as ours while both match.
"""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1


@dataclass
class ProcessRecord:
    name: str
    pid: int
    start_time: int  # clock ticks since boot, field 22 of /proc/PID/stat
    log: str
    kind: str = ""  # "app", "sidecar", "control", "broker" or "store": decides the stop order
    stop_signal: int = signal.SIGTERM  # PostgreSQL's fast shutdown is SIGINT (SIGTERM waits for clients)

    def to_json(self) -> dict:
        return asdict(self)


def proc_start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has exited; it only waits to be reaped
        return None
    return int(fields[19])


def is_running(record: ProcessRecord) -> bool:
    return proc_start_time(record.pid) == record.start_time


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends SIGTERM when the parent goes away."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class _Spawner(threading.Thread):
    """The kernel sends the death signal when the *thread* that started the child ends, not the
    process: a process tied to its parent but started from a short-lived thread (a test running
    two stacks at once, a thread each) got SIGTERM as soon as that thread was done. Such children
    are started from this one thread instead, which lives as long as the process."""

    def __init__(self):
        super().__init__(name="ordersaga-spawner", daemon=True)
        self.jobs: queue.Queue = queue.Queue()

    def run(self) -> None:
        while True:
            start, outcome = self.jobs.get()
            try:
                outcome.append((start(), None))
            except BaseException as error:  # noqa: BLE001 - handed to the caller
                outcome.append((None, error))

    def call(self, start):
        outcome: list = []
        self.jobs.put((start, outcome))
        while not outcome:
            time.sleep(0.005)
        result, error = outcome[0]
        if error is not None:
            raise error
        return result


_spawner: _Spawner | None = None
_spawner_lock = threading.Lock()


def _in_lasting_thread(start):
    """`start()` in a thread that lives as long as the process (the main one, or the spawner)."""
    global _spawner
    if threading.current_thread() is threading.main_thread():
        return start()
    with _spawner_lock:
        if _spawner is None:
            _spawner = _Spawner()
            _spawner.start()
    return _spawner.call(start)


def spawn(
    name: str,
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    log_path: Path,
    tie_to_parent: bool,
    kind: str = "",
    stop_signal: int = signal.SIGTERM,
    user: str | None = None,
) -> tuple[ProcessRecord, subprocess.Popen]:
    """Start one process in its own session, stdout and stderr appended to `log_path`.

    Its own session keeps a Ctrl-C in the terminal from reaching it directly: the supervisor
    decides the shutdown order. `tie_to_parent` makes it die with the supervisor (foreground
    `up`, test fixtures) so a supervisor killed with SIGKILL leaves no orphans behind (the
    kernel keeps that tie across the switch to `user`, a system user for servers that refuse
    to run as root).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}: {' '.join(argv)}\n".encode())
        log.flush()
        def start() -> subprocess.Popen:
            return subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if tie_to_parent else None,
                **({"user": user, "group": user, "extra_groups": []} if user else {}),
            )

        proc = _in_lasting_thread(start) if tie_to_parent else start()
    start_time = None
    for _ in range(100):
        start_time = proc_start_time(proc.pid)
        if start_time is not None or proc.poll() is not None:
            break
        time.sleep(0.01)
    return ProcessRecord(name, proc.pid, start_time or -1, str(log_path), kind, int(stop_signal)), proc


def stop(record: ProcessRecord, *, timeout: float = 10.0) -> None:
    """Ask politely (the record's stop signal), then SIGKILL after `timeout`; returns once the
    process is gone."""
    if not is_running(record):
        return
    try:
        os.kill(record.pid, record.stop_signal)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(record.pid)
        if not is_running(record):
            return
        time.sleep(0.05)
    kill(record)


def kill(record: ProcessRecord) -> None:
    """SIGKILL, as a crash would; returns once the process is gone."""
    if not is_running(record):
        return
    try:
        os.kill(record.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    for _ in range(200):
        _reap(record.pid)
        if not is_running(record):
            return
        time.sleep(0.025)


def _reap(pid: int) -> None:
    """Collect the exit status when the process is our child, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def log_tail(path: str | Path, lines: int = 30) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
