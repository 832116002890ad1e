"""The sidecars' name resolution (nameresolution.sqlite, components-contrib 1.18.4), as the stack
renders it: a sidecar must stay findable while it is alive, however its renewals are delayed.

The component's arithmetic (nameresolution/sqlite/sqlite.go): a host is found while
`unixepoch(now) - last_update < updateInterval`, both in whole seconds; each sidecar renews every
`updateInterval - timeout - 1ns`, a renewal taking up to `timeout`. A renewal at t stamps
floor(t), so the row expires at floor(t) + updateInterval, while the next renewal is due at
t + updateInterval - timeout: the slack is `timeout - frac(t)`, between timeout - 1 s and timeout.
"""

import re
from datetime import timedelta

import pytest
import yaml

from ordersaga.stack.profiles import config_file
from ordersaga.stack.runtime import project_root

CONFIGS = ["config.yaml", "config-services.yaml"]


def _seconds(value: str) -> float:
    """A Go duration as the Configurations write them ("10s", "500ms", "0")."""
    if value == "0":
        return 0.0
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    total, rest = 0.0, value
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", value):
        total += float(number) * units[unit]
        rest = rest.replace(number + unit, "", 1)
    assert rest == "", f"not a duration: {value!r}"
    return total


def _name_resolution(path) -> dict:
    return yaml.safe_load(path.read_text())["spec"]["nameResolution"]


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("rendered", ["shipped", "retention-and-tracing"])
def test_a_sidecar_stays_findable_through_a_late_renewal(tmp_path, name, rendered):
    components = project_root() / "components"
    args = ("60", "http://127.0.0.1:9411/api/v2/spans") if rendered != "shipped" else (None, None)
    path = config_file(components, tmp_path, args[0], zipkin_endpoint=args[1], name=name)
    resolution = _name_resolution(path)
    assert resolution["component"] == "sqlite"
    conf = resolution["configuration"]
    interval, timeout = _seconds(conf["updateInterval"]), _seconds(conf["timeout"])
    # What the component itself refuses at start.
    assert interval == int(interval), "updateInterval must be whole seconds"
    assert timeout >= 1 and interval - timeout >= 1
    # The worst case of the slack (a renewal made just before a second turns): a renewal may be
    # this late, or take this long, and the sidecar is still found. The defaults gave 0 s.
    assert timeout - 1 >= 3
    # ... and a stopped sidecar is not listed for long.
    assert interval <= 15


@pytest.mark.parametrize("name", CONFIGS)
def test_the_clean_up_that_deletes_live_hosts_is_off(name):
    # components-contrib 1.18.4 deletes rows with `unixepoch(now) - last_update < updateInterval`
    # (the live ones) every cleanupInterval (an hour by default); every sidecar's next renewal
    # then finds no row and daprd exits ("Host registration lost"). 0 schedules no clean-up.
    conf = _name_resolution(project_root() / "components" / name)["configuration"]
    assert _seconds(conf["cleanupInterval"]) == 0


def test_every_sidecar_resolves_names_the_same_way():
    components = project_root() / "components"
    assert _name_resolution(components / "config.yaml") == _name_resolution(components / "config-services.yaml")


def test_durations_parse_as_go_writes_them():
    assert _seconds("10s") == 10 and _seconds("1m30s") == 90 and _seconds("500ms") == 0.5
    assert timedelta(seconds=_seconds("0")) == timedelta(0)
