"""The cluster's certificates and kubeconfigs, made with `openssl` (ECDSA P-256, one CA).

Who is who follows Kubernetes' conventions: the common name is the user, the organisation the
group. The admin and the apiserver's client to the kubelet are in `system:masters`; the kubelet
is `system:node:<node>` in `system:nodes` (the Node authorizer's rule); the controller manager,
scheduler and kube-proxy use the names the default RBAC roles are bound to.
"""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass
from pathlib import Path

DAYS = 3650


class PkiError(RuntimeError):
    pass


@dataclass(frozen=True)
class Identity:
    name: str  # file stem
    common_name: str
    organisation: str = ""
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    server: bool = False
    client: bool = True


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PkiError(f"openssl {args[0]} failed: {proc.stderr.strip()[-800:]}")


def _key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path), cwd=path.parent)
    path.chmod(0o600)


def make_ca(pki: Path) -> None:
    pki.mkdir(parents=True, exist_ok=True)
    if (pki / "ca.crt").is_file():
        return
    _key(pki / "ca.key")
    _openssl("req", "-x509", "-new", "-key", "ca.key", "-out", "ca.crt", "-days", str(DAYS), "-subj",
             "/CN=ordersaga-local-cluster-ca", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature", cwd=pki)


def issue(pki: Path, who: Identity) -> None:
    if (pki / f"{who.name}.crt").is_file():
        return
    _key(pki / f"{who.name}.key")
    subject = f"/CN={who.common_name}" + (f"/O={who.organisation}" if who.organisation else "")
    _openssl("req", "-new", "-key", f"{who.name}.key", "-out", f"{who.name}.csr", "-subj", subject, cwd=pki)
    usages = [u for u, on in (("serverAuth", who.server), ("clientAuth", who.client)) if on]
    lines = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment",
             f"extendedKeyUsage={','.join(usages)}"]
    alt = [f"DNS:{d}" for d in who.dns] + [f"IP:{i}" for i in who.ips]
    if alt:
        lines.append(f"subjectAltName={','.join(alt)}")
    (pki / f"{who.name}.ext").write_text("\n".join(lines) + "\n")
    _openssl("x509", "-req", "-in", f"{who.name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{who.name}.crt", "-days", str(DAYS), "-extfile", f"{who.name}.ext", cwd=pki)
    (pki / f"{who.name}.csr").unlink()
    (pki / f"{who.name}.ext").unlink()


def service_account_keys(pki: Path) -> None:
    """The key pair the apiserver signs service account tokens with (and verifies them)."""
    if (pki / "sa.key").is_file():
        return
    _key(pki / "sa.key")
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def kubeconfig(path: Path, pki: Path, server: str, user: str, cert: str) -> None:
    """A kubeconfig with the certificates inline, so it can be copied elsewhere on its own."""
    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    path.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: ordersaga-local
  cluster:
    server: {server}
    certificate-authority-data: {b64("ca.crt")}
users:
- name: {user}
  user:
    client-certificate-data: {b64(cert + ".crt")}
    client-key-data: {b64(cert + ".key")}
contexts:
- name: {user}@ordersaga-local
  context:
    cluster: ordersaga-local
    user: {user}
current-context: {user}@ordersaga-local
""")
    path.chmod(0o600)
