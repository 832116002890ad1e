"""A real headless Chromium for the console's tests: Debian's `chromium` driven through
`chromium-driver` by Selenium, both paths given, so nothing downloads a browser or a driver.

Missing packages are installed when the tests run as root with apt-get (as `make test`
installs what else it needs); otherwise the tests fail and say what to install. Never skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess

PACKAGES = ("chromium", "chromium-driver")
BROWSERS = ("chromium", "chromium-browser")
DRIVERS = ("chromedriver",)  # chromium-driver puts it on PATH


class BrowserMissing(RuntimeError):
    pass


def find() -> tuple[str, str] | None:
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    driver = next((found for name in DRIVERS if (found := shutil.which(name))), None)
    return (browser, driver) if browser and driver else None


def ensure(log=print) -> tuple[str, str]:
    """(chromium, chromedriver) paths, installing the Debian packages when missing and possible."""
    found = find()
    if found:
        return found
    apt = shutil.which("apt-get")
    if os.geteuid() != 0 or not apt:
        raise BrowserMissing(f"the console tests need a real Chromium: install the Debian packages "
                             f"{' and '.join(PACKAGES)} (apt-get install -y {' '.join(PACKAGES)})")
    log(f"installing {' '.join(PACKAGES)} (apt-get) for the console's browser tests")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", *PACKAGES]):
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise BrowserMissing(f"{' '.join(command)} failed ({result.returncode}): {result.stderr[-2000:]}")
    found = find()
    if not found:
        raise BrowserMissing(f"{' and '.join(PACKAGES)} were installed but chromium/chromedriver are not on PATH")
    return found


def start(browser: str, driver: str, width: int = 1280, height: int = 1000):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox",  # root in a container has no user namespaces
                     "--disable-dev-shm-usage", "--disable-gpu", "--disable-extensions",
                     "--no-first-run", "--disable-background-networking", f"--window-size={width},{height}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the page's console, for the tests
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))
