import pytest

from ordersaga.stack.runtime import RuntimeProvisionError, ensure_dapr


def pytest_report_header(config):
    """Name the Dapr runtime the e2e tests run against, at the top of the test output."""
    try:
        dapr = ensure_dapr(log=lambda message: print(message, flush=True))
    except RuntimeProvisionError as error:
        return f"dapr: NOT AVAILABLE ({error})"
    return f"dapr: daprd {dapr.version} ({dapr.source}) from {dapr.daprd.parent.name}/"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
