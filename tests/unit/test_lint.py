"""The code base stays lint-clean (pyflakes, pycodestyle, import order) under ruff."""

import subprocess
import sys
from pathlib import Path

from ordersaga.protos import ROOT


def test_ruff_finds_nothing():
    ruff = Path(sys.executable).parent / "ruff"  # installed with the test extra
    result = subprocess.run([str(ruff), "check", "--quiet", str(ROOT)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
