"""Every image the cluster runs, built here without a daemon and imported into containerd.

- The static Go programs (pause, CoreDNS, Dapr's operator, sentry, injector, placement,
  scheduler and daprd) become one-layer images shaped like distroless/static (ordersaga/cluster/oci.py):
  the binary at `/<name>`, as Dapr's own images and Helm chart expect it, user `nonroot` (65532).
- The Python base: a Debian 12 root file system made by debootstrap from Debian's packages, with
  Debian's Python 3.11 and pip, set up like `python:3.11-slim` (pip installs into /usr/local).
- The ordersaga image: the repository's Dockerfile, run by buildah with its `FROM` replaced by
  that base (`buildah bud --from`). The Dockerfile stays the one recipe: what it says is what
  the cluster runs. Its RUN steps borrow the machine's pip settings and CA bundle (read-only
  mounts), so `pip install` works where the machine's does; nothing of them ends up in the image.

Archives are kept in the user cache, keyed by what went into them; a second `k8s-up` only imports.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ordersaga.cluster import oci
from ordersaga.stack.runtime import cache_root, project_root

DAPR_REGISTRY = "localhost/dapr"
DAPR_TAG = "1.18.3"
PAUSE_IMAGE = "localhost/ordersaga/pause:3.10"
COREDNS_IMAGE = "localhost/ordersaga/coredns:1.12.0"
BASE_IMAGE = "localhost/ordersaga/python:3.11-slim"
APP_REPOSITORY = "localhost/ordersaga"
DEBIAN_SUITE = "bookworm"
# What the base holds beyond debootstrap's minbase: Debian 12's Python 3.11 with pip, `python`
# as a command (python-is-python3), and the CA certificates pip needs for PyPI.
BASE_PACKAGES = ("python3", "python3-pip", "python-is-python3", "ca-certificates")
_BASE_RECIPE = 2  # bump when the base's steps change: a new fingerprint rebuilds it


class ImageBuildError(RuntimeError):
    """An image could not be built or imported; the message names it and shows the log's end."""


@dataclass(frozen=True)
class Image:
    name: str  # the full reference the pods use
    archive: Path


def images_dir() -> Path:
    path = cache_root() / "cluster" / "images"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _run_logged(what: str, argv: list[str], log_path: Path, *, env: dict | None = None, cwd: Path | None = None,
                log: Callable[[str], None] = print, tick_s: float = 20.0) -> None:
    """Run a long step with its output in `log_path` and a progress line every `tick_s` seconds;
    a failure names `what` with the log's last lines."""
    started = time.monotonic()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as sink:
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                stdin=subprocess.DEVNULL)
        while True:
            try:
                code = proc.wait(timeout=tick_s)
                break
            except subprocess.TimeoutExpired:
                last = _tail(log_path.read_text(errors="replace"), 1)[:100]
                log(f"  ... {time.monotonic() - started:4.0f}s ({last})")
    if code != 0:
        raise ImageBuildError(f"{what} failed (exit {code}); full log: {log_path}\n"
                              f"{_tail(log_path.read_text(errors='replace'))}")


# ---- static images -------------------------------------------------------------------------------

def _file_key(path: Path) -> str:
    stat = path.stat()
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def static_image(name: str, binaries: dict[str, Path], config: oci.ImageConfig) -> Image:
    key = hashlib.sha256(json.dumps([name, sorted((t, _file_key(p)) for t, p in binaries.items()),
                                     config.to_json()], sort_keys=True).encode()).hexdigest()[:12]
    archive = images_dir() / f"{_slug(name)}-{key}.tar"
    if not archive.is_file():
        layer = archive.with_suffix(".layer")
        oci.static_layer(layer, binaries)
        try:
            oci.write_archive(archive, name, [layer], config)
        finally:
            layer.unlink(missing_ok=True)
    return Image(name, archive)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-")


def control_plane_images(programs: dict[str, Path], dapr_binaries: dict[str, Path]) -> list[Image]:
    """pause and CoreDNS from the Kubernetes builds; Dapr's six images from its builds."""
    nonroot = f"{oci.NONROOT}:{oci.NONROOT}"
    images = [
        static_image(PAUSE_IMAGE, {"/pause": programs["pause"]}, oci.ImageConfig(entrypoint=["/pause"], user="65535")),
        static_image(COREDNS_IMAGE, {"/coredns": programs["coredns"]},
                     oci.ImageConfig(entrypoint=["/coredns"], user=nonroot)),
    ]
    for name, path in sorted(dapr_binaries.items()):
        images.append(static_image(f"{DAPR_REGISTRY}/{name}:{DAPR_TAG}", {f"/{name}": path},
                                   oci.ImageConfig(entrypoint=[f"/{name}"], user=nonroot)))
    return images


# ---- the Python base (debootstrap) -------------------------------------------------------------------

def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (ORDERSAGA_DEBIAN_MIRROR overrides), so
    debootstrap fetches from where `apt-get` does."""
    explicit = os.environ.get("ORDERSAGA_DEBIAN_MIRROR")
    if explicit:
        return explicit
    for uri, suites, components in _apt_sources():
        if DEBIAN_SUITE in suites and "main" in components and "security" not in uri:
            return uri
    return "http://deb.debian.org/debian"


def _apt_sources() -> list[tuple[str, list[str], list[str]]]:
    found = []
    sources_list = Path("/etc/apt/sources.list")
    files = [sources_list] if sources_list.is_file() else []
    files += sorted(Path("/etc/apt/sources.list.d").glob("*"))
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":  # deb822
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
                if "deb" in fields.get("Types", "").split():
                    for uri in fields.get("URIs", "").split():
                        found.append((uri, fields.get("Suites", "").split(), fields.get("Components", "").split()))
        else:
            for line in text.splitlines():
                parts = line.split("#", 1)[0].split()
                if len(parts) >= 4 and parts[0] == "deb":
                    rest = [p for p in parts[1:] if not p.startswith("[")]
                    if len(rest) >= 3:
                        found.append((rest[0], [rest[1]], rest[2:]))
    return found


def base_image(log: Callable[[str], None] = print) -> Image:
    """Debian 12 with Python 3.11 and pip (debootstrap), as an OCI archive in the cache."""
    key = hashlib.sha256(json.dumps([_BASE_RECIPE, DEBIAN_SUITE, BASE_PACKAGES]).encode()).hexdigest()[:12]
    archive = images_dir() / f"{_slug(BASE_IMAGE)}-{key}.tar"
    if archive.is_file():
        return Image(BASE_IMAGE, archive)
    work = images_dir() / f"base-{key}.partial"
    shutil.rmtree(work, ignore_errors=True)
    rootfs = work / "rootfs"
    rootfs.mkdir(parents=True)
    mirror = debian_mirror()
    log(f"Building the Python base image with debootstrap (Debian {DEBIAN_SUITE}, {', '.join(BASE_PACKAGES)}); "
        "about 2 min, once ...")
    started = time.monotonic()
    # Its own mount namespace: whatever debootstrap mounts in the target (/proc, /sys) goes away
    # with it, even when it fails half way.
    argv = ["unshare", "--mount", "--propagation", "private", "debootstrap", "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}", "--components=main",
            "--keyring=/usr/share/keyrings/debian-archive-keyring.gpg", DEBIAN_SUITE, str(rootfs), mirror]
    _run_logged("debootstrap (the Python base image)", argv, work / "debootstrap.log", log=log)
    _slim(rootfs)
    layer = work / "layer.tar"
    proc = subprocess.run(["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(layer),
                           "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*", "."],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise ImageBuildError(f"packing the Python base image failed: {_tail(proc.stderr)}")
    config = oci.ImageConfig(cmd=["python3"], env=[
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"])
    oci.write_archive(archive, BASE_IMAGE, [layer], config)
    shutil.rmtree(work, ignore_errors=True)
    log(f"  base image built in {time.monotonic() - started:.0f}s ({archive.stat().st_size / 1e6:.0f} MB)")
    return Image(BASE_IMAGE, archive)


def _slim(rootfs: Path) -> None:
    """What python:3.11-slim does not carry, and pip's PEP 668 marker: that image's pip installs
    into the system (here /usr/local, Debian's scheme for pip run as root), and so must this one's."""
    for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
        marker.unlink()
    for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
                    "var/log/*.log", "var/log/apt/*", "usr/share/doc/*", "usr/share/man/*", "usr/share/info/*"):
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    # The host's resolver settings were copied in for the second stage; buildah and the kubelet
    # provide their own.
    (rootfs / "etc" / "resolv.conf").unlink(missing_ok=True)
    (rootfs / "etc" / "hostname").write_text("localhost\n")


# ---- the ordersaga image (the Dockerfile, through buildah) ------------------------------------------

def _context_files(root: Path) -> list[Path]:
    """The files the Dockerfile reads: its COPY sources (the context, minus .dockerignore's
    patterns is more than this needs: the COPY lines name everything the image gets)."""
    dockerfile = (root / "Dockerfile").read_text()
    sources = []
    for line in dockerfile.splitlines():
        parts = line.split()
        if parts[:1] == ["COPY"] and not any(p.startswith("--from") for p in parts):
            sources += [p for p in parts[1:-1] if not p.startswith("--")]
    files = [root / "Dockerfile", root / ".dockerignore"]
    for source in sources:
        path = root / source
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        elif path.exists():
            files.append(path)
    return [f for f in files if f.exists()]


def app_fingerprint(root: Path | None = None) -> str:
    root = root or project_root()
    digest = hashlib.sha256()
    for path in _context_files(root):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _pip_settings(work: Path) -> list[str]:
    """`-v` mounts lending the machine's pip configuration to the RUN steps (read-only): a pip.conf
    made from `pip config list` (the global settings and PIP_* variables), and the CA bundle it
    names, at the same path."""
    proc = subprocess.run(["python3", "-m", "pip", "config", "list"], capture_output=True, text=True)
    settings: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        match = re.match(r"^(?::env:|global|install)\.([\w-]+)='(.*)'$", line.strip())
        if match and match.group(1) not in ("find-links", "no-index"):  # the machine's own wheel folders
            settings[match.group(1)] = match.group(2)
    mounts = []
    if settings:
        config = configparser.ConfigParser()
        config["global"] = settings
        pip_conf = work / "pip.conf"
        with pip_conf.open("w") as out:
            config.write(out)
        mounts += ["-v", f"{pip_conf}:/etc/pip.conf:ro"]
    cert = settings.get("cert")
    if cert and Path(cert).is_file():
        mounts += ["-v", f"{Path(cert).resolve()}:{cert}:ro"]
    return mounts


class Buildah:
    """buildah with its own storage in the user cache (vfs: no mounts outlive a command)."""

    def __init__(self, run_dir: Path):
        self.root = cache_root() / "cluster" / "buildah"
        self.run_root = run_dir / "buildah"
        self.policy = self.root / "policy.json"

    def argv(self, *args: str) -> list[str]:
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.policy.is_file():
            # Only local archives are ever read: nothing is pulled from a registry.
            self.policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        return ["buildah", "--root", str(self.root / "storage"), "--runroot", str(self.run_root),
                "--storage-driver", "vfs", *args]

    def run(self, what: str, *args: str, log_path: Path, log: Callable[[str], None] = print) -> None:
        _run_logged(what, self.argv(*args), log_path, log=log, cwd=project_root(),
                    env=dict(os.environ, BUILDAH_ISOLATION="chroot"))


def app_image(tag: str, run_dir: Path, log: Callable[[str], None] = print) -> Image:
    """The repository's Dockerfile built with buildah on the debootstrap base, exported as an
    archive named `localhost/ordersaga:<tag>`."""
    root = project_root()
    base = base_image(log)
    key = hashlib.sha256(f"{app_fingerprint(root)}:{base.archive.name}".encode()).hexdigest()[:12]
    name = f"{APP_REPOSITORY}:{tag}"
    archive = images_dir() / f"{_slug(name)}-{key}.tar"
    if archive.is_file():
        return Image(name, archive)
    work = run_dir / "image-build"
    work.mkdir(parents=True, exist_ok=True)
    buildah = Buildah(run_dir)
    log(f"Building {name} from the Dockerfile with buildah (FROM {BASE_IMAGE}) ...")
    started = time.monotonic()
    buildah.run("buildah pull (the Python base)", "pull", "--signature-policy", str(buildah.policy),
                f"oci-archive:{base.archive}", log_path=work / "pull.log", log=log)
    buildah.run(f"buildah bud (the Dockerfile, {name})", "bud", "--signature-policy", str(buildah.policy),
                "--isolation", "chroot", "--network", "host", "--pull=never", "--from", BASE_IMAGE,
                *_pip_settings(work), "-f", str(root / "Dockerfile"), "-t", name, str(root),
                log_path=work / "bud.log", log=log)
    partial = archive.with_name(archive.name + ".partial")
    partial.unlink(missing_ok=True)
    buildah.run("buildah push (the ordersaga image)", "push", "--signature-policy", str(buildah.policy),
                name, f"docker-archive:{partial}:{name}", log_path=work / "push.log", log=log)
    partial.replace(archive)
    # The image stays in buildah's storage only as long as it is needed: the archive is the cache.
    subprocess.run(buildah.argv("rmi", "--all", "--force"), capture_output=True)
    log(f"  {name} built in {time.monotonic() - started:.0f}s ({archive.stat().st_size / 1e6:.0f} MB)")
    return Image(name, archive)


# ---- into containerd ---------------------------------------------------------------------------------

def import_images(ctr: list[str], images: list[Image], log: Callable[[str], None] = print) -> None:
    """`ctr images import` each archive into the CRI's namespace (k8s.io), under its name."""
    have = set(subprocess.run([*ctr, "images", "ls", "-q"], capture_output=True, text=True).stdout.split())
    started = time.monotonic()
    for image in images:
        if image.name in have:
            continue
        log(f"  importing {image.name} ({image.archive.stat().st_size / 1e6:.0f} MB)")
        proc = subprocess.run([*ctr, "images", "import", "--no-unpack=false", str(image.archive)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise ImageBuildError(f"importing {image.name} ({image.archive}) into containerd failed:\n"
                                  f"{_tail(proc.stdout + proc.stderr)}")
        listed = set(subprocess.run([*ctr, "images", "ls", "-q"], capture_output=True, text=True).stdout.split())
        if image.name not in listed:
            raise ImageBuildError(f"imported {image.archive}, but containerd has no image {image.name}: it has "
                                  f"{', '.join(sorted(listed - have)) or 'nothing new'}")
        have = listed
    log(f"  {len(images)} images in containerd ({time.monotonic() - started:.0f}s)")
