"""The arrows of imports point one way: tooling (`ordersaga`: CLI, supervisor, bench) may
import the services and what they run on (`apphost`), never the reverse, so a service image
needs neither the CLI nor the stack supervisor."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ordersaga.protos import ROOT

RUNTIME_PACKAGES = ["apphost", "order_service", "inventory_service", "payment_service", "shipping_service"]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", RUNTIME_PACKAGES)
def test_services_and_apphost_never_import_the_tooling(package):
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path) if m.split(".")[0] == "ordersaga")
        for path in (ROOT / package).rglob("*.py")
    }
    offenders = {path: mods for path, mods in offenders.items() if mods}
    assert not offenders, f"runtime code imports the tooling package: {offenders}"


def test_apphost_imports_no_service():
    services = set(RUNTIME_PACKAGES) - {"apphost"}
    for path in (ROOT / "apphost").rglob("*.py"):
        used = {m.split(".")[0] for m in imported_modules(path)} & services
        assert not used, f"{path.name} imports {used}: apphost is what services run on, not a service"
