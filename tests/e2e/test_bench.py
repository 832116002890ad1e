"""`ordersaga bench` end to end, at toy size: every kind of row it prints (closed loop, an
open-loop step with both SKU spreads, a scenario, overload, growth over time, parked orders), on
a stack of its own that it removes afterwards, for the embedded profile and for the production
one with two replicas."""

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
         "--overload", "4", "--growth-minutes", "0.25", "--growth-interval", "5", "--engine", "5",
         "--profile", profile, "--replicas", replicas],
        env=env, capture_output=True, text=True, timeout=380)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"ordersaga bench: {profile} profile, {replicas} replica(s) per app" in run.stdout
    rows = {line.split("  ")[0]: line for line in run.stdout.splitlines()}
    for label, orders in [("closed loop, 3 lines", 3), ("open 2/s, 3 lines, hot SKUs", 6),
                          ("open 2/s, 3 lines, zipf 1000 SKUs", 6), ("open 2/s, declines-20", 6),
                          ("closed loop beside parked", 20)]:
        numbers = rows[label][len(label):].split()
        assert numbers[:2] == [str(orders), str(orders)], rows[label]  # every order reached its end
        assert numbers[6] == "0", rows[label]  # no errors
    assert re.search(r"^parked 5/5 orders in \d+s .* 0 errors, 0 ended instead", run.stdout, re.M), run.stdout
    assert "per process, open 2/s, 3 lines, hot SKUs: " in run.stdout
    assert re.search(r"^capacity: [\d.]+ sagas/s \(open 2/s, 3 lines, zipf 1000 SKUs\)$", run.stdout, re.M)
    # Overload: whether or not admission control refuses at this toy size, nothing accepted is
    # lost and no refused order exists.
    assert "overload 4x, zipf 1000 SKUs  " in run.stdout
    assert re.search(r"^    overload: accepted orders: \d+ ended, .* lost \(accepted, never ended\) 0$", run.stdout,
                     re.M), run.stdout
    assert re.search(r"^    overload: (nothing refused|.*refused orders that exist: 0 of)", run.stdout, re.M)
    assert len(re.findall(r"^    growth 0:\d\d: \d+ ended, ", run.stdout, re.M)) >= 2, run.stdout
    assert re.search(r"^    growth: .* lost \(accepted, not ended within 300s of the end\) 0$", run.stdout, re.M)
    assert re.search(r"^    growth, store: [\d.]+ MB -> [\d.]+ MB; first third", run.stdout, re.M), run.stdout
    # The engine rows (issue 22): every workflow ended, the ratios, the per-saga counts.
    for label, count in [("engine: 5 no-op activities, one at a time", 3), ("engine: 5 no-op activities, 5 at once", 5),
                         ("ordersaga: 3 lines, 5 at once", 5)]:
        numbers = rows[label][len(label):].split()
        assert numbers[:2] == [str(count), str(count)] and numbers[6] == "0", rows[label]
    assert re.search(r"^ordersaga / engine: [\d.]+x the sagas/s \([\d.]+ 'ordersaga: 3 lines, 5 at once'", run.stdout,
                     re.M), run.stdout
    assert re.search(r"^ordersaga / engine, one at a time: p50 \d+ against \d+ ms$", run.stdout, re.M)
    counted = re.search(r"^    per saga, open 2/s, 3 lines, hot SKUs: actor turns ([\d.]+), .* service calls ([\d.]+), "
                        r".* published events ([\d.]+); scheduler jobs ([\d.]+)", run.stdout, re.M)
    assert counted and all(float(n) > 0 for n in counted.groups()), run.stdout
    assert not list(scratch.glob("ordersaga-bench-*")), "the bench left its run directory behind"
