"""The local Kubernetes' tooling (ordersaga/cluster/), checked without a cluster: what a missing
package says, how a failing component is reported, the images' archives, the README's commands."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile

import pytest

from ordersaga.cluster import build, images, install, oci, prereqs
from ordersaga.cluster.node import ClusterError, ClusterState, Network, Node, pick_ports
from ordersaga.stack.runtime import project_root

README = project_root() / "docs" / "deploying.md"  # "Deploying to Kubernetes", linked from the README


def test_a_missing_command_names_the_debian_package_to_install(tmp_path, monkeypatch):
    present = {"containerd", "ctr", "containerd-shim-runc-v2", "iptables", "conntrack", "openssl", "ip"}
    missing = prereqs.missing_packages(which=lambda name: name if name in present else None, cni_dir=tmp_path)
    assert missing["runc"] == ["runc"]
    assert missing["buildah"] == ["buildah"] and missing["debootstrap"] == ["debootstrap"]
    assert "CNI plugin bridge" in missing["containernetworking-plugins"]
    monkeypatch.setattr(prereqs, "missing_packages", lambda: missing)
    monkeypatch.setattr(prereqs.os, "geteuid", lambda: 1000)  # not root: nothing is installed, all is named
    with pytest.raises(prereqs.ClusterPrerequisiteError) as error:
        prereqs.ensure_packages(log=lambda message: None)
    message = str(error.value)
    assert "apt-get install -y buildah containernetworking-plugins debootstrap runc" in message
    assert "runc: runc" in message


def test_a_component_that_exits_is_named_with_the_end_of_its_log(tmp_path):
    state = ClusterState(run_dir=tmp_path, network=Network(octet=240, bridge="osaga240"), ports=pick_ports())
    log = state.log_path("kube-apiserver")
    log.parent.mkdir(parents=True)
    log.write_text("first line\n" + "\n".join(f"line {n}" for n in range(40)) + "\nE0101 bad flag --nope\n")
    child = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    child.wait()
    with pytest.raises(ClusterError) as error:
        Node(tmp_path)._wait(state, "kube-apiserver", child, timeout=5)
    message = str(error.value)
    assert message.startswith("kube-apiserver exited (code 3)")
    assert "E0101 bad flag --nope" in message and "line 39" in message and "first line" not in message


def test_the_build_fingerprint_follows_the_wrapper_module():
    for module in build.MODULES:
        assert (module.path / "go.mod").is_file() and (module.path / "go.sum").is_file(), module.name
        assert re.fullmatch(r"[0-9a-f]{12}", build.fingerprint(module))
    mod = (build.KUBERNETES.path / "go.mod").read_text()
    assert f"require k8s.io/kubernetes {build.KUBERNETES_VERSION}" in mod or \
        f"k8s.io/kubernetes {build.KUBERNETES_VERSION}" in mod
    staging = re.findall(r"^\s*(k8s\.io/\S+) => k8s\.io/\S+ (v0\.\d+\.\d+)$", mod, re.M)
    assert len(staging) == 31 and {v for _, v in staging} == {"v0.33.13"}


def test_a_static_image_archive_is_an_oci_layout_containerd_can_name(tmp_path):
    binary = tmp_path / "hello"
    binary.write_bytes(b"\x7fELF not really")
    layer = tmp_path / "layer.tar"
    oci.static_layer(layer, {"/hello": binary})
    archive = tmp_path / "image.tar"
    digest = oci.write_archive(archive, "localhost/test/hello:1", [layer], oci.ImageConfig(entrypoint=["/hello"],
                                                                                          user="65532:65532"))
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))
        assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == "localhost/test/hello:1"
        assert index["manifests"][0]["digest"] == digest
        manifest = json.load(tar.extractfile(f"blobs/sha256/{digest.split(':')[1]}"))
        config = json.load(tar.extractfile(f"blobs/{manifest['config']['digest'].replace(':', '/')}"))
        assert config["config"]["Entrypoint"] == ["/hello"] and config["config"]["User"] == "65532:65532"
        layer_blob = tar.extractfile(f"blobs/{manifest['layers'][0]['digest'].replace(':', '/')}")
        with tarfile.open(fileobj=layer_blob) as files:
            names = files.getnames()
            assert {"hello", "etc/passwd", "tmp"} <= set(names)
            assert files.getmember("tmp").mode == 0o1777
            assert files.getmember("hello").mode == 0o755


def test_debootstrap_uses_the_mirror_apt_uses(tmp_path, monkeypatch):
    monkeypatch.delenv("ORDERSAGA_DEBIAN_MIRROR", raising=False)
    sources = [("http://mirror.invalid/debian-security", ["bookworm-security"], ["main"]),
               ("http://mirror.invalid/debian", ["bookworm"], ["main"])]
    monkeypatch.setattr(images, "_apt_sources", lambda: sources)
    assert images.debian_mirror() == "http://mirror.invalid/debian"
    monkeypatch.setenv("ORDERSAGA_DEBIAN_MIRROR", "http://other.invalid/debian")
    assert images.debian_mirror() == "http://other.invalid/debian"


def test_the_app_image_follows_the_dockerfile_copy_lines():
    files = {str(p.relative_to(project_root())) for p in images._context_files(project_root())}
    assert {"Dockerfile", "pyproject.toml", "README.md", "order_service/__main__.py"} <= files
    assert not any(f.startswith(("ordersaga/", "tests/", ".venv/")) for f in files)


def test_the_readme_shows_the_install_commands_the_local_cluster_runs():
    text = " ".join(README.read_text().split())
    for command in install.readme_commands():
        assert " ".join(command.split()) in text, f"docs/deploying.md does not show: {command}"
