import sys
import time

from ordersaga.stack import processes
from ordersaga.stack.processes import ProcessRecord


def spawn_sleeper(tmp_path, name="sleeper"):
    return processes.spawn(
        name, [sys.executable, "-c", "import time; time.sleep(60)"], env={}, cwd=tmp_path,
        log_path=tmp_path / f"{name}.log", tie_to_parent=True,
    )


def test_spawned_process_runs_and_stops(tmp_path):
    record, _ = spawn_sleeper(tmp_path)
    assert processes.is_running(record)
    processes.stop(record, timeout=5)
    assert not processes.is_running(record)
    assert "starting sleeper" in (tmp_path / "sleeper.log").read_text()


def test_kill_is_immediate(tmp_path):
    record, _ = spawn_sleeper(tmp_path)
    started = time.monotonic()
    processes.kill(record)
    assert not processes.is_running(record)
    assert time.monotonic() - started < 5


def test_a_reused_pid_is_not_taken_for_ours(tmp_path):
    record, _ = spawn_sleeper(tmp_path)
    impostor = ProcessRecord(record.name, record.pid, record.start_time + 1, record.log)
    assert not processes.is_running(impostor)
    processes.stop(impostor)  # must not touch the real process
    assert processes.is_running(record)
    processes.kill(record)


def test_log_tail(tmp_path):
    path = tmp_path / "x.log"
    path.write_text("\n".join(str(i) for i in range(100)))
    assert processes.log_tail(path, 3) == "97\n98\n99"
    assert processes.log_tail(tmp_path / "missing.log") == "(no log)"
