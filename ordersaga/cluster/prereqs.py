"""What the local cluster needs from the machine, and installing what is missing.

The cluster runs as root (it creates network devices, mounts and cgroups, as any kubelet does).
The container runtime and the tools that build images come from Debian's packages: when a
command is missing, `ensure_packages` runs `apt-get update` once and `apt-get install -y` for the
packages that provide it; where that is impossible (not root, no apt-get) the error names the
packages to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable

# Command (or file) -> the Debian package that provides it.
COMMANDS: dict[str, str] = {
    "containerd": "containerd",
    "containerd-shim-runc-v2": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "iptables": "iptables",
    "conntrack": "conntrack",  # kube-proxy clears stale UDP entries (DNS) with it
    "debootstrap": "debootstrap",
    "buildah": "buildah",
    "openssl": "openssl",
    "ip": "iproute2",
}
CNI_DIR = Path("/usr/lib/cni")
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")
CNI_PACKAGE = "containernetworking-plugins"


class ClusterPrerequisiteError(RuntimeError):
    """Something the cluster needs is missing; the message says what to install or do."""


def missing_packages(which: Callable[[str], str | None] = shutil.which,
                     cni_dir: Path = CNI_DIR) -> dict[str, list[str]]:
    """Debian package -> the commands of it that are missing (empty: nothing is)."""
    missing: dict[str, list[str]] = {}
    for command, package in COMMANDS.items():
        if not which(command):
            missing.setdefault(package, []).append(command)
    absent = [p for p in CNI_PLUGINS if not (cni_dir / p).is_file()]
    if absent:
        missing.setdefault(CNI_PACKAGE, []).extend(f"CNI plugin {p}" for p in absent)
    return missing


def describe(missing: dict[str, list[str]]) -> str:
    lines = [f"  {package}: {', '.join(commands)}" for package, commands in sorted(missing.items())]
    return "\n".join(lines)


def ensure_packages(log: Callable[[str], None] = print) -> None:
    """Install the Debian packages whose commands are missing (`apt-get update` once, then one
    `apt-get install -y`), or raise naming them when that cannot be done here."""
    missing = missing_packages()
    if not missing:
        return
    packages = sorted(missing)
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ClusterPrerequisiteError(
            "The local cluster needs these Debian packages (package: what is missing):\n"
            f"{describe(missing)}\nInstall them: sudo apt-get install -y {' '.join(packages)}"
        )
    log(f"Installing Debian packages the cluster needs: {' '.join(packages)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-q"],
                 ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]):
        proc = subprocess.run(argv, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
            raise ClusterPrerequisiteError(
                f"`{' '.join(argv)}` failed (exit {proc.returncode}):\n{tail}\n"
                f"Install them yourself and run again: apt-get install -y {' '.join(packages)}"
            )
    still = missing_packages()
    if still:
        raise ClusterPrerequisiteError(f"Installed {' '.join(packages)}, but these are still missing:\n"
                                       f"{describe(still)}")
    log("  installed")


def check_host() -> None:
    """Root, cgroups and the kernel features the node uses; raises with what is wrong."""
    problems = []
    if os.geteuid() != 0:
        problems.append("The local cluster must run as root (the kubelet and containerd create mounts, cgroups "
                        "and network devices): run `sudo make k8s-up`.")
    if not Path("/sys/fs/cgroup").is_dir() or not any(Path("/sys/fs/cgroup").iterdir()):
        problems.append("No cgroup file system at /sys/fs/cgroup: containers cannot run here.")
    if not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        modprobe = subprocess.run(["modprobe", "br_netfilter"], capture_output=True, text=True) \
            if shutil.which("modprobe") else None
        if not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
            detail = (modprobe.stderr.strip() if modprobe else "no modprobe") or "no error"
            problems.append(f"The kernel's bridge netfilter (br_netfilter) is not available ({detail}): Services "
                            "between pods on the node's bridge need it.")
    if "overlay" not in Path("/proc/filesystems").read_text():
        if shutil.which("modprobe"):
            subprocess.run(["modprobe", "overlay"], capture_output=True)
        if "overlay" not in Path("/proc/filesystems").read_text():
            problems.append("The kernel has no overlay file system: containerd's snapshotter needs it.")
    if problems:
        raise ClusterPrerequisiteError("\n".join(problems))


def check_kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        raise ClusterPrerequisiteError(
            "kubectl is not on the PATH: the cluster is driven with it, as a user would. Install it (for example "
            "Debian's `kubernetes-client` package, or from the Kubernetes release you use)."
        )
    return kubectl
