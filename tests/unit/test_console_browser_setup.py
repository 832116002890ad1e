"""The console's browser tests find Debian's chromium and chromium-driver, and without them (and
no way to install them) stop with what to install: never a skip."""

from __future__ import annotations

import pytest

from tests.console import browser


def test_without_the_browser_and_without_root_the_error_names_the_packages(monkeypatch):
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    monkeypatch.setattr(browser.os, "geteuid", lambda: 1000)
    with pytest.raises(browser.BrowserMissing) as missing:
        browser.ensure()
    assert "apt-get install -y chromium chromium-driver" in str(missing.value)


def test_found_on_path(monkeypatch):
    monkeypatch.setattr(browser.shutil, "which", lambda name: f"/opt/bin/{name}")
    assert browser.ensure() == ("/opt/bin/chromium", "/opt/bin/chromedriver")
