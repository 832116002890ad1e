"""OCI image archives written directly, without a daemon or a registry.

An image here is one uncompressed layer (a tar of its files) plus a config; `write_archive`
makes the OCI image layout tar that `ctr images import` and `buildah pull oci-archive:` read.
The images of statically linked Go programs (the control planes, CoreDNS, pause) are built with
`static_layer`; the Python base image takes a root file system made by debootstrap.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NONROOT = 65532  # distroless's `nonroot`, the user Dapr's images run as
_EPOCH = 0  # fixed timestamps: the same inputs give the same digests

_PASSWD = """root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
"""
_GROUP = """root:x:0:
nobody:x:65534:
nonroot:x:65532:
"""


@dataclass
class ImageConfig:
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=lambda: [DEFAULT_PATH])
    user: str = ""
    workdir: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        config: dict = {"Env": self.env}
        for key, value in (("Entrypoint", self.entrypoint), ("Cmd", self.cmd), ("User", self.user),
                           ("WorkingDir", self.workdir), ("Labels", self.labels)):
            if value:
                config[key] = value
        return config


def _add(tar: tarfile.TarFile, name: str, *, data: bytes | None = None, mode: int = 0o644,
         kind: bytes = tarfile.REGTYPE, uid: int = 0, gid: int = 0) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = _EPOCH
    if data is not None:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


def static_layer(path: Path, binaries: dict[str, Path], extra_files: dict[str, bytes] | None = None) -> None:
    """A layer for static Go programs, shaped like distroless/static: each binary at its
    path in the image (e.g. "/operator"), /etc/passwd and /etc/group with `nonroot` (65532),
    a writable /tmp and the home of `nonroot`."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for directory, mode, owner in (("etc", 0o755, 0), ("tmp", 0o1777, 0), ("home", 0o755, 0),
                                       ("home/nonroot", 0o700, NONROOT), ("var", 0o755, 0),
                                       ("var/run", 0o755, 0)):
            _add(tar, directory, kind=tarfile.DIRTYPE, mode=mode, uid=owner, gid=owner)
        _add(tar, "etc/passwd", data=_PASSWD.encode())
        _add(tar, "etc/group", data=_GROUP.encode())
        for name, data in sorted((extra_files or {}).items()):
            _add(tar, name.lstrip("/"), data=data)
        for target, source in sorted(binaries.items()):
            parent = str(Path(target.lstrip("/")).parent)
            if parent not in (".", "etc", "tmp", "home", "var"):
                _add(tar, parent, kind=tarfile.DIRTYPE, mode=0o755)
            info = tarfile.TarInfo(target.lstrip("/"))
            info.size = source.stat().st_size
            info.mode = 0o755
            info.mtime = _EPOCH
            with source.open("rb") as content:
                tar.addfile(info, content)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as content:
        for block in iter(lambda: content.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_archive(out: Path, name: str, layers: list[Path], config: ImageConfig) -> str:
    """An OCI image layout tar at `out` holding one image named `name` (a full reference, e.g.
    "localhost/dapr/operator:1.18.3"); returns the manifest's digest."""
    diff_ids = []
    descriptors = []
    for layer in layers:
        digest = _sha256_file(layer)
        diff_ids.append(f"sha256:{digest}")
        descriptors.append({"mediaType": LAYER_MEDIA_TYPE, "digest": f"sha256:{digest}", "size": layer.stat().st_size})
    image_config = json.dumps({
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_EPOCH)),
        "architecture": "amd64",
        "os": "linux",
        "config": config.to_json(),
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "ordersaga.cluster.oci"} for _ in layers],
    }, sort_keys=True).encode()
    config_digest = hashlib.sha256(image_config).hexdigest()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": f"sha256:{config_digest}", "size": len(image_config)},
        "layers": descriptors,
    }, sort_keys=True).encode()
    manifest_digest = hashlib.sha256(manifest).hexdigest()
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [{
            "mediaType": MANIFEST_MEDIA_TYPE, "digest": f"sha256:{manifest_digest}", "size": len(manifest),
            "platform": {"architecture": "amd64", "os": "linux"},
            # containerd names the imported image after this annotation; OCI tools read the other.
            "annotations": {"io.containerd.image.name": name,
                            "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]},
        }],
    }, sort_keys=True).encode()
    partial = out.with_name(out.name + ".partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "oci-layout", data=b'{"imageLayoutVersion": "1.0.0"}')
        _add(tar, "index.json", data=index)
        _add(tar, "blobs", kind=tarfile.DIRTYPE, mode=0o755)
        _add(tar, "blobs/sha256", kind=tarfile.DIRTYPE, mode=0o755)
        _add(tar, f"blobs/sha256/{config_digest}", data=image_config)
        _add(tar, f"blobs/sha256/{manifest_digest}", data=manifest)
        for layer, descriptor in zip(layers, descriptors):
            info = tarfile.TarInfo(f"blobs/{descriptor['digest'].replace(':', '/')}")
            info.size = descriptor["size"]
            info.mode = 0o644
            info.mtime = _EPOCH
            with layer.open("rb") as content:
                tar.addfile(info, content)
    partial.replace(out)
    return f"sha256:{manifest_digest}"
