"""`ordersaga bench` end to end, at toy size: every kind of row it prints (closed loop, an
open-loop step, a scenario, parked orders), on a stack of its own that it removes afterwards,
for the embedded profile and for the production one with two replicas."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest


@pytest.fixture()
def scratch():
    """The bench's TMPDIR: reachable by the postgres user (pytest's own temp folder is not)."""
    folder = Path(tempfile.mkdtemp(prefix="ordersaga-bench-test-"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.timeout(400)
@pytest.mark.parametrize("profile, replicas", [("embedded", "1"), ("production", "2")])
def test_the_bench_prints_every_row_and_leaves_nothing_behind(scratch, profile, replicas):
    env = dict(os.environ, TMPDIR=str(scratch))
    run = subprocess.run(
        [sys.executable, "-m", "ordersaga.cli", "bench", "--rates", "2", "--seconds", "3", "--closed-orders", "3",
         "--scenarios", "declines-20", "--scenario-rate", "2", "--parked", "5", "--rest-seconds", "1",
         "--profile", profile, "--replicas", replicas],
        env=env, capture_output=True, text=True, timeout=380)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"ordersaga bench: {profile} profile, {replicas} replica(s) per app" in run.stdout
    rows = {line.split("  ")[0]: line for line in run.stdout.splitlines()}
    for label, orders in [("closed loop, 3 lines", 3), ("open 2/s, 3 lines", 6), ("open 2/s, declines-20", 6),
                          ("closed loop beside parked", 20)]:
        numbers = rows[label][len(label):].split()
        assert numbers[:2] == [str(orders), str(orders)], rows[label]  # every order reached its end
        assert numbers[6] == "0", rows[label]  # no errors
    assert re.search(r"^parked 5/5 orders in \d+s .* 0 errors, 0 ended instead", run.stdout, re.M), run.stdout
    assert "per process, open 2/s, 3 lines: " in run.stdout
    assert not list(scratch.glob("ordersaga-bench-*")), "the bench left its run directory behind"
