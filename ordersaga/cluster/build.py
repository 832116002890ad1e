"""The cluster's programs, built once from the Go module proxy into the user cache.

Three wrapper modules in deploy/cluster/, each with a committed go.sum:
- `kubernetes/`: kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy and
  kubectl from k8s.io/kubernetes v1.33.13; etcd at the version Kubernetes pins; `pause` (the
  sandbox's process) and `cri-sweep` (removes every pod sandbox at `down`).
- `coredns/`: CoreDNS v1.12.0 with the plugins the cluster's Corefile uses.
- `dapr/`: Dapr v1.18.3's operator, sentry and sidecar injector. placement, scheduler and the
  sidecars' daprd are the local stack's binaries (ordersaga/stack/runtime.py), so the cluster runs
  the same Dapr build as one machine does.

Like the Dapr runtime, each build is keyed by a fingerprint of its module: a second run finds the
binaries and returns at once; a changed go.mod, go.sum or Go file rebuilds. The build log of a
failed build is kept beside the cache folder and its last lines are in the error.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ordersaga.stack.runtime import (
    RuntimeProvisionError,
    cache_root,
    check_go,
    go_build_with_progress,
    project_root,
)

KUBERNETES_VERSION = "v1.33.13"
COREDNS_VERSION = "1.12.0"
DAPR_VERSION = "1.18.3"


@dataclass(frozen=True)
class GoModule:
    """One wrapper module and what it builds: output name -> Go package (`./x` is the module's own)."""

    name: str
    folder: str
    targets: dict[str, str]
    ldflags: str
    about: str  # what the progress line says it builds
    minimum_go: tuple[int, int, int]
    expected_cold_s: int

    @property
    def path(self) -> Path:
        return project_root() / "deploy" / "cluster" / self.folder


_K8S_VERSION_FLAGS = " ".join(
    f"-X k8s.io/component-base/version.{key}={value}"
    for key, value in (("gitVersion", KUBERNETES_VERSION), ("gitMajor", "1"), ("gitMinor", "33"),
                       ("gitTreeState", "clean"))
) + f" -X k8s.io/client-go/pkg/version.gitVersion={KUBERNETES_VERSION}"

KUBERNETES = GoModule(
    name="kubernetes",
    folder="kubernetes",
    targets={
        "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
        "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
        "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
        "kubelet": "k8s.io/kubernetes/cmd/kubelet",
        "kube-proxy": "k8s.io/kubernetes/cmd/kube-proxy",
        "kubectl": "k8s.io/kubernetes/cmd/kubectl",
        "etcd": "./cmd/etcd",
        "pause": "./cmd/pause",
        "cri-sweep": "./cmd/cri-sweep",
    },
    ldflags=f"-s -w {_K8S_VERSION_FLAGS}",
    about=f"Kubernetes {KUBERNETES_VERSION} (apiserver, controller-manager, scheduler, kubelet, kube-proxy, "
          "kubectl) and etcd",
    minimum_go=(1, 24, 0),
    expected_cold_s=600,
)

COREDNS = GoModule(
    name="coredns",
    folder="coredns",
    targets={"coredns": "."},
    ldflags="-s -w",
    about=f"CoreDNS {COREDNS_VERSION}",
    minimum_go=(1, 22, 7),
    expected_cold_s=120,
)

DAPR_CONTROL_PLANE = GoModule(
    name="dapr-control-plane",
    folder="dapr",
    targets={
        "operator": "github.com/dapr/dapr/cmd/operator",
        "sentry": "github.com/dapr/dapr/cmd/sentry",
        "injector": "github.com/dapr/dapr/cmd/injector",
    },
    ldflags=f"-s -w -X github.com/dapr/dapr/pkg/buildinfo.version={DAPR_VERSION}",
    about=f"Dapr {DAPR_VERSION}'s operator, sentry and sidecar injector",
    minimum_go=(1, 26, 6),
    expected_cold_s=240,
)

MODULES = (KUBERNETES, COREDNS, DAPR_CONTROL_PLANE)


def fingerprint(module: GoModule) -> str:
    digest = hashlib.sha256(module.ldflags.encode())
    for name in sorted(module.targets):
        digest.update(f"{name}={module.targets[name]}".encode())
    files = [module.path / "go.mod", module.path / "go.sum", *sorted(module.path.rglob("*.go"))]
    for path in files:
        digest.update(str(path.relative_to(module.path)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def output_dir(module: GoModule) -> Path:
    return cache_root() / "cluster" / f"{module.name}-{fingerprint(module)}"


def is_built(module: GoModule) -> bool:
    out = output_dir(module)
    return all((out / name).is_file() for name in module.targets)


def ensure_module(module: GoModule, log: Callable[[str], None] = print) -> Path:
    """The folder holding the module's binaries, built first when the cache lacks them."""
    if not (module.path / "go.mod").is_file():
        raise RuntimeProvisionError(f"{module.path} is missing: run from a clone of the ordersaga repository.")
    out_dir = output_dir(module)
    if is_built(module):
        return out_dir
    go = check_go(module.about, "then run again.", minimum=module.minimum_go)
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log(f"Building {module.about} from the Go module proxy (about {module.expected_cold_s // 60 or 1} min cold "
        "on two cores; later runs reuse the cache) ...")
    started = time.monotonic()
    argv = [go, "build", "-v", "-trimpath", "-ldflags", module.ldflags, "-o", str(staging) + "/",
            *module.targets.values()]
    go_build_with_progress(argv, module.path, out_dir.with_name(out_dir.name + ".build.log"), module.about, log=log)
    # `go build -o dir/` names each binary after its package's last element (for `.`, the module's):
    # the targets' keys are those names.
    missing = [name for name in module.targets if not (staging / name).is_file()]
    if missing:
        raise RuntimeProvisionError(f"Building {module.about}: no {', '.join(missing)} in {staging}")
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    size = sum((out_dir / name).stat().st_size for name in module.targets) / 1e6
    log(f"Built {module.about} in {time.monotonic() - started:.0f}s ({size:.0f} MB)")
    return out_dir


def ensure_all(log: Callable[[str], None] = print) -> dict[str, Path]:
    """Every program of the cluster: name -> path."""
    found: dict[str, Path] = {}
    for module in MODULES:
        out_dir = ensure_module(module, log)
        found.update({name: out_dir / name for name in module.targets})
    return found
