import pytest

from ordersaga.stack import runtime


def fake_dapr_dir(tmp_path, version="1.18.3"):
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name in runtime.BINARIES:
        path = tmp_path / name
        path.write_text(f"#!/bin/sh\necho {version}\n")
        path.chmod(0o755)
    return tmp_path


def test_an_installed_118_is_used(tmp_path):
    assert runtime._usable_dir(fake_dapr_dir(tmp_path)) == "1.18.3"


def test_other_versions_and_incomplete_installs_are_not(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "incomplete").mkdir()
    assert runtime._usable_dir(fake_dapr_dir(tmp_path / "old", "1.17.0")) is None
    incomplete = fake_dapr_dir(tmp_path / "incomplete")
    (incomplete / "scheduler").unlink()
    assert runtime._usable_dir(incomplete) is None


def test_an_installed_dapr_needs_no_sentry_of_its_own(tmp_path, monkeypatch):
    """`dapr init --slim` installs no sentry: the stack's mTLS takes ours, built beside our build."""
    installed = fake_dapr_dir(tmp_path / "installed")
    (installed / "sentry").unlink()
    assert runtime._usable_dir(installed) == "1.18.3"
    built = tmp_path / "cache" / "ours"
    monkeypatch.setattr(runtime, "_build_dir", lambda: built)
    monkeypatch.setattr(runtime, "_module_dir", lambda: tmp_path)
    builds = []
    monkeypatch.setattr(runtime, "_build", lambda module, out, names, log: builds.append((out, names)))
    binaries = runtime._binaries(installed, "1.18.3", "installed", log=lambda _: None)
    assert builds == [(built, ("sentry",))]
    assert binaries.daprd == installed / "daprd" and binaries.sentry == built / "sentry"
    assert runtime._binaries(fake_dapr_dir(tmp_path / "full"), "1.18.3", "installed").sentry == \
        tmp_path / "full" / "sentry"  # one beside daprd is used as it is


def test_explicit_bin_dir_must_hold_118(tmp_path, monkeypatch):
    monkeypatch.setenv("ORDERSAGA_DAPR_BIN_DIR", str(fake_dapr_dir(tmp_path, "1.14.0")))
    with pytest.raises(runtime.RuntimeProvisionError, match="1.18"):
        runtime.ensure_dapr(log=lambda _: None)


def test_missing_go_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("ORDERSAGA_DAPR_BIN_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # nothing built yet
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.dapr/bin
    monkeypatch.setenv("PATH", "/nonexistent")  # neither daprd nor go
    with pytest.raises(runtime.RuntimeProvisionError, match="Go is not installed"):
        runtime.ensure_dapr(log=lambda _: None)


def test_the_build_is_keyed_by_the_wrapper_module():
    module = runtime.project_root() / "dapr-runtime"
    assert len(runtime._fingerprint(module)) == 12
    assert runtime._BUILD_TARGETS["sentry"] == "./cmd/sentry" and (module / "cmd" / "sentry" / "main.go").is_file()
    assert "replace github.com/dapr/durabletask-go" in (module / "go.mod").read_text()
