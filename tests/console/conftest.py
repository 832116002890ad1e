"""The console as a user meets it: `python -m ordersaga.console` against the session's real
embedded stack, in a real headless Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest

from ordersaga.stack.layout import HOST, free_port
from tests.console import browser as chromium

PAGE_SIZE = 3  # orders per page of the console's list: a few orders page


@pytest.fixture(scope="module")
def console(stack, tmp_path_factory) -> str:
    """The console's base URL, served for the module's tests, stopped (by its pid) after."""
    port = free_port(set())
    log_path = tmp_path_factory.mktemp("console") / "console.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ordersaga.console", "--host", HOST, "--port", str(port), "--page-size",
             str(PAGE_SIZE)],
            env={**os.environ, "ORDERSAGA_HOME": str(stack.run_dir)}, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the console did not come up (exit {process.poll()}): {log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        print(f"console log:\n{log_path.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def browser():
    try:
        paths = chromium.ensure()
    except chromium.BrowserMissing as error:
        pytest.fail(str(error))  # never skipped: a missing browser is a broken set-up
    driver = chromium.start(*paths)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
