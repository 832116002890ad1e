"""Pause a process of the stack (SIGSTOP) and resume it (SIGCONT), as a long GC pause, a
stalled VM or a frozen container would: its sockets stay open, nothing answers.

Every process of the stack leads its own process group (it was started in a session of its
own), so the signal goes to the group: PostgreSQL's backends stop with the postmaster. A
watchdog process resumes the group after a deadline even if the caller dies first (a test
killed outright must not leave a stack frozen behind it); it checks the process is still the
one it was asked about before it signals.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from ordersaga.stack.processes import ProcessRecord, is_running

_WATCHDOG = """
import os, signal, sys, time
pid, start, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
time.sleep(seconds)
try:
    stat = open(f"/proc/{pid}/stat").read()
except OSError:
    sys.exit(0)
if stat[stat.rindex(")") + 2:].split()[19] == start:
    os.killpg(pid, signal.SIGCONT)
"""


class PauseError(RuntimeError):
    """The process cannot be paused (not running, or not leading its own process group)."""


def _group(record: ProcessRecord) -> int:
    if not is_running(record):
        raise PauseError(f"{record.name} (pid {record.pid}) is not running")
    if os.getpgid(record.pid) != record.pid:
        raise PauseError(f"{record.name} (pid {record.pid}) does not lead its process group: not ours to stop")
    return record.pid


def pause(record: ProcessRecord, resume_after_s: float) -> subprocess.Popen:
    """SIGSTOP the process's group; a watchdog sends SIGCONT after `resume_after_s` unless
    `resume` came first. Returns the watchdog (pass it to `resume`)."""
    group = _group(record)
    watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(record.pid), str(record.start_time),
                                 str(resume_after_s)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    os.killpg(group, signal.SIGSTOP)
    for _ in range(200):  # the signal is delivered asynchronously: return once it took
        if is_paused(record) or not is_running(record):
            break
        time.sleep(0.005)
    return watchdog


def resume(record: ProcessRecord, watchdog: subprocess.Popen | None = None) -> None:
    """SIGCONT the process's group (a process that died meanwhile is left alone), and end
    the watchdog."""
    try:
        if is_running(record):
            os.killpg(record.pid, signal.SIGCONT)
    finally:
        if watchdog is not None and watchdog.poll() is None:
            watchdog.kill()
            watchdog.wait()


def is_paused(record: ProcessRecord) -> bool:
    try:
        with open(f"/proc/{record.pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return False
    return is_running(record) and text[text.rindex(")") + 2:].split()[0] == "T"
