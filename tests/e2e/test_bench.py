"""`ordersaga bench` end to end, at toy size: every kind of row it prints (closed loop, an
open-loop step, a scenario, parked orders), on a stack of its own that it removes afterwards."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest


@pytest.mark.timeout(400)
def test_the_bench_prints_every_row_and_leaves_nothing_behind(tmp_path, stack):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    run = subprocess.run(
        [sys.executable, "-m", "ordersaga.cli", "bench", "--rates", "2", "--seconds", "3", "--closed-orders", "3",
         "--scenarios", "declines-20", "--scenario-rate", "2", "--parked", "5", "--rest-seconds", "1"],
        env=env, capture_output=True, text=True, timeout=380)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = {line.split("  ")[0]: line for line in run.stdout.splitlines()}
    for label, orders in [("closed loop, 3 lines", 3), ("open 2/s, 3 lines", 6), ("open 2/s, declines-20", 6),
                          ("closed loop beside parked", 20)]:
        numbers = rows[label][len(label):].split()
        assert numbers[:2] == [str(orders), str(orders)], rows[label]  # every order reached its end
        assert numbers[6] == "0", rows[label]  # no errors
    assert re.search(r"^parked 5/5 orders in \d+s .* 0 errors, 0 ended instead", run.stdout, re.M), run.stdout
    assert "per process, open 2/s, 3 lines: " in run.stdout
    assert not list(tmp_path.glob("ordersaga-bench-*")), "the bench left its run directory behind"
