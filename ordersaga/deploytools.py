"""Provision helm, which renders and lints the Kubernetes chart in `deploy/helm/ordersaga`.

Order of preference:
1. a `helm` on the PATH at v3.22.x, used as is;
2. a build from source at v3.22.0 through the Go module proxy (the wrapper module in
   `deploy/tools/`, whose committed go.sum verifies every module), into a per-user cache.

Like the Dapr runtime (ordersaga/stack/runtime.py), the build is keyed by a fingerprint of the
wrapper module: a second run finds the binary and returns in milliseconds.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ordersaga.stack.runtime import (
    RuntimeProvisionError,
    cache_root,
    check_go,
    go_build_with_progress,
    project_root,
)

HELM_VERSION = "v3.22.0"
SUPPORTED_MINOR = "v3.22."
MIN_GO = (1, 26, 0)  # the `go` line of deploy/tools/go.mod; GOTOOLCHAIN=local never fetches a newer one
_HELM_PACKAGE = "helm.sh/helm/v3/cmd/helm"


def tools_module() -> Path:
    return project_root() / "deploy" / "tools"


def helm_version(path: Path | str) -> str | None:
    """`helm version --short` (e.g. v3.22.0+gabc), or None when it does not run."""
    try:
        out = subprocess.run([str(path), "version", "--short"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"v\d+\.\d+\.\d+\S*", out.stdout)
    return match.group(0) if out.returncode == 0 and match else None


def _fingerprint(module_dir: Path) -> str:
    digest = hashlib.sha256(HELM_VERSION.encode())
    for rel in ("go.mod", "go.sum"):
        digest.update(rel.encode())
        digest.update((module_dir / rel).read_bytes())
    return digest.hexdigest()[:12]


def _ldflags(module_dir: Path) -> str:
    """What helm's own Makefile stamps: its version, and the Kubernetes version it assumes offline.

    Without the latter, `helm template` and `helm lint` believe the cluster runs Kubernetes 1.20
    and refuse a chart whose kubeVersion asks for more. Helm derives it from the client-go it
    was built with (v0.37.x means Kubernetes 1.37); so do we, from the committed go.mod.
    """
    match = re.search(r"^\s*k8s\.io/client-go v0\.(\d+)\.", (module_dir / "go.mod").read_text(), re.M)
    if not match:
        raise RuntimeProvisionError(f"{module_dir / 'go.mod'} does not name k8s.io/client-go")
    flags = [f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}",
             "-X helm.sh/helm/v3/internal/version.gitTreeState=clean"]
    for package in ("helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"):
        flags += [f"-X {package}.k8sVersionMajor=1", f"-X {package}.k8sVersionMinor={match.group(1)}"]
    return " ".join(["-s", "-w", *flags])


def _build(module_dir: Path, out_dir: Path, log=print) -> None:
    go = check_go(
        f"helm {HELM_VERSION}",
        f"or put helm {SUPPORTED_MINOR}x on the PATH (https://helm.sh/docs/intro/install/).",
        minimum=MIN_GO,
    )
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log(f"Building helm {HELM_VERSION} from the Go module proxy; a cold build takes about 90 s on two "
        "cores, later runs reuse the cache.")
    started = time.monotonic()
    argv = [go, "build", "-v", "-trimpath", "-ldflags", _ldflags(module_dir), "-o", str(staging / "helm"),
            _HELM_PACKAGE]
    go_build_with_progress(argv, module_dir, out_dir.with_name(out_dir.name + ".build.log"), "helm", log=log)
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    size = (out_dir / "helm").stat().st_size / 1e6
    log(f"Built helm {HELM_VERSION} in {time.monotonic() - started:.0f}s ({size:.0f} MB)")


def ensure_helm(log=print) -> tuple[Path, str]:
    """The helm binary and where it came from ("path" or "built"); raises RuntimeProvisionError."""
    found = shutil.which("helm")
    if found and (helm_version(found) or "").startswith(SUPPORTED_MINOR):
        return Path(found), "path"
    module_dir = tools_module()
    if not (module_dir / "go.mod").is_file():
        raise RuntimeProvisionError(
            f"No helm {SUPPORTED_MINOR}x on the PATH and no deploy/tools/ module ({module_dir}) to build one "
            "from: run from a clone of the ordersaga repository."
        )
    out_dir = cache_root() / "tools" / _fingerprint(module_dir)
    if not (out_dir / "helm").is_file():
        _build(module_dir, out_dir, log=log)
    return out_dir / "helm", "built"


def main() -> int:
    """`python -m ordersaga.deploytools`: provision helm and print where it is."""
    try:
        helm, source = ensure_helm()
    except RuntimeProvisionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"helm {helm_version(helm) or '?'} ({source}): {helm}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
