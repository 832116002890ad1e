"""Provision the Dapr runtime binaries: daprd, placement, scheduler and sentry at 1.18.x.

Order of preference:
1. `ORDERSAGA_DAPR_BIN_DIR`, when set (daprd, placement and scheduler must be there, at 1.18.x);
2. an installed Dapr 1.18.x (`~/.dapr/bin` after `dapr init`, or the PATH);
3. a build from source at v1.18.3 through the Go module proxy, into a per-user cache.
Sentry (the certificate authority of the stack's mTLS) is taken from beside daprd when it is
there; an installed Dapr without it (`dapr init --slim` has none) gets it built from source.

The build is keyed by a fingerprint of the wrapper module in `dapr-runtime/`, so a second run
finds the binaries and returns in milliseconds; a changed go.mod, go.sum or main.go rebuilds.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

DAPR_VERSION = "1.18.3"
SUPPORTED_MINOR = "1.18."
BINARIES = ("daprd", "placement", "scheduler", "sentry")
_CORE = BINARIES[:3]  # what an installed Dapr must have; sentry may be built beside it
MIN_GO = (1, 26, 6)  # dapr v1.18.3's go.mod; an older Go would try to download a toolchain

# Import paths built by `go build` inside dapr-runtime/ (daprd and sentry are main packages of our own).
_BUILD_TARGETS = {
    "daprd": "./cmd/daprd",
    "placement": "github.com/dapr/dapr/cmd/placement",
    "scheduler": "github.com/dapr/dapr/cmd/scheduler",
    "sentry": "./cmd/sentry",  # upstream's, with its /healthz on 127.0.0.1 (see its main.go)
}


class RuntimeProvisionError(RuntimeError):
    """The Dapr binaries could not be found or built; the message says what to do."""


@dataclass(frozen=True)
class DaprBinaries:
    daprd: Path
    placement: Path
    scheduler: Path
    sentry: Path
    version: str
    source: str  # "env", "installed" or "built"

    def path(self, name: str) -> Path:
        return getattr(self, name)


def project_root() -> Path:
    return Path(__file__).resolve().parents[2]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ordersaga"


def binary_version(path: Path) -> str | None:
    """`--version` of a Dapr binary, or None when it does not run or says nothing useful."""
    try:
        out = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"\d+\.\d+\.\d+\S*", out.stdout + out.stderr)
    return match.group(0) if match else None


def _usable_dir(directory: Path) -> str | None:
    """The daprd version in `directory` when it is 1.18.x and placement and scheduler sit beside it.

    Only daprd answers `--version`; placement and scheduler come from the same release.
    """
    for name in _CORE:
        candidate = directory / name
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            return None
    version = binary_version(directory / "daprd")
    return version if version and version.startswith(SUPPORTED_MINOR) else None


def _installed_dirs() -> list[Path]:
    dirs = [Path.home() / ".dapr" / "bin"]
    found = shutil.which("daprd")
    if found:
        dirs.append(Path(found).resolve().parent)
    return dirs


def _fingerprint(module_dir: Path) -> str:
    digest = hashlib.sha256()
    for rel in ("go.mod", "go.sum", "cmd/daprd/main.go", "cmd/sentry/main.go"):
        digest.update(rel.encode())
        digest.update((module_dir / rel).read_bytes())
    return digest.hexdigest()[:12]


def check_go(needed_for: str, alternatives: str, minimum: tuple[int, int, int] = MIN_GO) -> str:
    """The `go` command at `minimum` or newer, or an error saying what to install to build `needed_for`."""
    wanted = ".".join(str(n) for n in minimum)
    go = shutil.which("go")
    if not go:
        raise RuntimeProvisionError(
            f"Go is not installed, and it is needed to build {needed_for} from source.\n"
            f"Install Go >= {wanted} (e.g. from your distribution or go.dev), {alternatives}"
        )
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True).stdout.strip()
    numbers = tuple(int(n) for n in re.findall(r"\d+", out)[:3])
    if numbers < minimum:
        raise RuntimeProvisionError(f"Go {out} is too old to build {needed_for}: it needs go{wanted} or newer.")
    return go


def _check_go() -> str:
    return check_go(
        f"the Dapr runtime (daprd, placement, scheduler) v{DAPR_VERSION}",
        "or install Dapr 1.18 with `dapr init` (ordersaga uses ~/.dapr/bin when it holds 1.18.x), or point "
        "ORDERSAGA_DAPR_BIN_DIR at a folder with daprd, placement and scheduler 1.18.x.",
    )


# Every module is verified against the committed go.sum; never fetch a toolchain.
GO_BUILD_ENV = {"CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly -buildvcs=false", "GOTOOLCHAIN": "local"}


def go_build_with_progress(argv: list[str], module_dir: Path, build_log: Path, what: str, log=print) -> None:
    """Run `argv` (a `go build -v ...`) in `module_dir` with GO_BUILD_ENV, its output into `build_log`.

    A cold build takes minutes, so a line every 15 s says it is alive and how far it got. A failure
    raises RuntimeProvisionError naming `what`, with the log's last lines.
    """
    started = time.monotonic()
    proc = subprocess.Popen(
        argv, cwd=module_dir, env=dict(os.environ, **GO_BUILD_ENV),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    compiled = 0
    last_line = ""
    stop_ticker = threading.Event()

    def ticker() -> None:
        while not stop_ticker.wait(15):
            log(f"  ... {time.monotonic() - started:4.0f}s, {compiled} packages compiled ({last_line})")

    threading.Thread(target=ticker, daemon=True).start()
    with build_log.open("w") as sink:
        assert proc.stdout is not None
        for line in proc.stdout:
            sink.write(line)
            if not line.startswith(("go: ", "#")) and " " not in line.strip():
                compiled += 1
                last_line = line.strip()
    code = proc.wait()
    stop_ticker.set()
    if code != 0:
        tail = "".join(build_log.read_text().splitlines(keepends=True)[-25:])
        raise RuntimeProvisionError(f"Building {what} failed (exit {code}); full log: {build_log}\n{tail}")


def _build(module_dir: Path, out_dir: Path, names: tuple[str, ...] = BINARIES, log=print) -> None:
    """Build `names` into `out_dir`; each binary lands there whole or not at all."""
    go = _check_go()
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    ldflags = f"-s -w -X github.com/dapr/dapr/pkg/buildinfo.version={DAPR_VERSION}"
    argv = [go, "build", "-v", "-trimpath", "-ldflags", ldflags, "-o", str(staging) + "/"]
    argv += [_BUILD_TARGETS[name] for name in names]
    log(
        f"Building Dapr {DAPR_VERSION} ({', '.join(names)}) from the Go module proxy; "
        "a cold build takes several minutes on two cores, later runs reuse the cache."
    )
    started = time.monotonic()
    build_log = out_dir.with_name(out_dir.name + ".build.log")
    go_build_with_progress(argv, module_dir, build_log, "Dapr", log=log)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        (staging / name).replace(out_dir / name)
    shutil.rmtree(staging, ignore_errors=True)
    sizes = ", ".join(f"{n} {(out_dir / n).stat().st_size / 1e6:.0f} MB" for n in names)
    log(f"Built Dapr {DAPR_VERSION} in {time.monotonic() - started:.0f}s: {sizes}")


def ensure_dapr(log=print) -> DaprBinaries:
    """Find or build daprd, placement and scheduler; raise RuntimeProvisionError on failure."""
    explicit = os.environ.get("ORDERSAGA_DAPR_BIN_DIR")
    if explicit:
        version = _usable_dir(Path(explicit))
        if not version:
            raise RuntimeProvisionError(
                f"ORDERSAGA_DAPR_BIN_DIR={explicit} must hold daprd, placement and scheduler "
                f"at version {SUPPORTED_MINOR}x"
            )
        return _binaries(Path(explicit), version, "env", log)

    for directory in _installed_dirs():
        version = _usable_dir(directory)
        if version:
            return _binaries(directory, version, "installed", log)

    out_dir = _build_dir()
    missing = tuple(name for name in BINARIES if not (out_dir / name).is_file())
    if missing:
        # A cache from before sentry was part of the build has the other three: sentry alone.
        _build(_module_dir(), out_dir, missing if "daprd" not in missing else BINARIES, log=log)
    return _binaries(out_dir, DAPR_VERSION, "built", log)


def _module_dir() -> Path:
    module_dir = project_root() / "dapr-runtime"
    if not (module_dir / "go.mod").is_file():
        raise RuntimeProvisionError(
            f"No Dapr {SUPPORTED_MINOR}x found and no dapr-runtime/ module next to the package "
            f"({module_dir}) to build one from: run from a clone of the ordersaga repository."
        )
    return module_dir


def _build_dir() -> Path:
    return cache_root() / "dapr" / f"{DAPR_VERSION}-{_fingerprint(_module_dir())}"


def _binaries(directory: Path, version: str, source: str, log=print) -> DaprBinaries:
    sentry = directory / "sentry"
    if not sentry.is_file():  # an installed Dapr without it: built from source, beside our own build
        built = _build_dir()
        if not (built / "sentry").is_file():
            _build(_module_dir(), built, ("sentry",), log=log)
        sentry = built / "sentry"
    return DaprBinaries(
        daprd=directory / "daprd",
        placement=directory / "placement",
        scheduler=directory / "scheduler",
        sentry=sentry,
        version=version,
        source=source,
    )


def main() -> int:
    """`python -m ordersaga.stack.runtime`: provision and print where the binaries are."""
    try:
        binaries = ensure_dapr()
    except RuntimeProvisionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Dapr {binaries.version} ({binaries.source}): {binaries.daprd.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
