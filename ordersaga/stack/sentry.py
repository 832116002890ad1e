"""mTLS on one machine: Dapr's Sentry as the stack's certificate authority, and who may ask it
for which identity.

Dapr's access control (`accessControl` in a Configuration) judges a call by the caller's SPIFFE
ID, which daprd reads from the peer certificate of an mTLS connection; without mTLS every caller
is anonymous. So the stack runs Sentry, and every daprd, placement and scheduler gets its
workload certificate from it (renewed by daprd itself; a day's validity):

- The CA is generated once per run directory into `tls/ca/` (a root and an issuer, EC P-256,
  valid a year, renewed by a cold `up` a month before they expire): Sentry signs with the issuer,
  and every process trusts the root (`DAPR_TRUST_ANCHORS` for daprd, `--trust-anchors-file` for
  placement and scheduler).
- Sentry hands a certificate for an identity only to who holds that identity's token: a JWT
  signed by a key of the run directory's own (`tls/tokens/<id>.jwt`, read by daprd through
  `DAPR_SENTRY_TOKEN_FILE`), checked by Sentry's JWKS validator. Sentry's self-hosted default,
  the "insecure" validator, would sign any app id for any process that reaches its port, so a
  process of another user could call the services as order-service. The files are the user's
  alone (0600 in a 0700 folder).
- Identities (pkg/sentry and pkg/security, v1.18.3): apps are `spiffe://public/ns/default/<app
  id>` (trust domain "public" when the request names none; namespace from NAMESPACE, "default"
  when unset), the control plane `spiffe://localhost/ns/default/dapr-<name>` (the control
  plane's trust domain, "localhost" by default on every side).

The services' Configuration (components/config-services.yaml) denies every caller but
order-service; order-service's (components/config.yaml) has no access control, since its
public API is open through any sidecar (DESIGN.md).
"""

from __future__ import annotations

import base64
import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from ordersaga.stack.layout import APPS, HOST, StackState
from ordersaga.stack.specs import ProcessSpec, http_ok

MTLS_ENV = "ORDERSAGA_MTLS"  # "off": no Sentry, no mTLS and so no access control (to measure its cost)
APP_TRUST_DOMAIN = "public"
CONTROL_PLANE_TRUST_DOMAIN = "localhost"
NAMESPACE = "default"
CONTROL_PLANE = ("dapr-placement", "dapr-scheduler")
SENTRY_ID = f"spiffe://{CONTROL_PLANE_TRUST_DOMAIN}/ns/{NAMESPACE}/dapr-sentry"
# The scheduler's embedded etcd checks that its certificate names it the way Sentry names the
# Kubernetes scheduler pods (dapr-scheduler-server-N....svc.<trust domain>): its --id must be one.
SCHEDULER_ID = "dapr-scheduler-server-0"

CA_VALIDITY = datetime.timedelta(days=365)
RENEW_BEFORE = datetime.timedelta(days=30)
CLOCK_SKEW = datetime.timedelta(minutes=15)


def mtls_setting(value: str | None) -> bool | None:
    """ORDERSAGA_MTLS: "on" or "off"; None when unset (the stack's own, on for a new one)."""
    if value is None or value == "":
        return None
    if value.lower() not in ("on", "off"):
        raise ValueError(f"{MTLS_ENV} must be on or off, not {value[:32]!r}")
    return value.lower() == "on"


def spiffe_id(identity: str) -> str:
    domain = CONTROL_PLANE_TRUST_DOMAIN if identity in CONTROL_PLANE else APP_TRUST_DOMAIN
    return f"spiffe://{domain}/ns/{NAMESPACE}/{identity}"


def config_name(app_id: str, mtls: bool) -> str:
    """The Configuration file (in components/) of an app's sidecars: the services' denies every
    caller but order-service, which needs mTLS (without it, it would deny order-service too)."""
    return "config-services.yaml" if mtls and app_id != "order-service" else "config.yaml"


@dataclass(frozen=True)
class Credentials:
    """What the run directory's `tls/` folder holds."""

    root: Path

    @property
    def ca_dir(self) -> Path:  # Sentry's --issuer-credentials (it watches this folder)
        return self.root / "ca"

    @property
    def trust_anchors_file(self) -> Path:
        return self.ca_dir / "ca.crt"

    @property
    def jwks_file(self) -> Path:
        return self.root / "jwks.json"

    @property
    def sentry_config(self) -> Path:
        return self.root / "sentry-config.yaml"

    @property
    def scheduler_identity_dir(self) -> Path:  # where the scheduler writes its certificate for etcd
        return self.root / "scheduler"

    def token_file(self, identity: str) -> Path:
        return self.root / "tokens" / f"{identity}.jwt"

    def trust_anchors(self) -> str:
        return self.trust_anchors_file.read_text()


def credentials(run_dir: Path) -> Credentials:
    return Credentials(run_dir / "tls")


def ensure_credentials(run_dir: Path, renew: bool = False) -> Credentials:
    """The stack's CA, token key and tokens, generated when missing (or, with `renew`, when they
    expire within RENEW_BEFORE: only on a cold start, since every process trusts the root)."""
    creds = credentials(run_dir)
    if creds.trust_anchors_file.is_file() and creds.sentry_config.is_file() and not (renew and _expiring(creds)):
        return creds
    for folder in (creds.root, creds.ca_dir, creds.root / "tokens"):  # the scheduler makes its own (a symlink)
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
    now = datetime.datetime.now(datetime.timezone.utc)
    not_after = now + CA_VALIDITY
    root_key, issuer_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = _ca_certificate("ordersaga local CA", root_key.public_key(), root_key, None, now, not_after)
    issuer = _ca_certificate(SENTRY_ID, issuer_key.public_key(), root_key, root, now, not_after)
    _write(creds.trust_anchors_file, root.public_bytes(serialization.Encoding.PEM))
    _write(creds.ca_dir / "issuer.crt", issuer.public_bytes(serialization.Encoding.PEM))
    _write(creds.ca_dir / "issuer.key", issuer_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    signing_key = ec.generate_private_key(ec.SECP256R1())
    key_id = base64.urlsafe_b64encode(os.urandom(12)).decode().rstrip("=")
    _write(creds.jwks_file, json.dumps({"keys": [_jwk(signing_key.public_key(), key_id)]}).encode())
    for identity in [*APPS, *CONTROL_PLANE]:
        token = _jwt(signing_key, key_id, {"sub": spiffe_id(identity), "aud": SENTRY_ID,
                                           "iat": int(now.timestamp()), "exp": int(not_after.timestamp())})
        _write(creds.token_file(identity), token.encode())
    _write(creds.sentry_config, _sentry_configuration(creds.jwks_file).encode())
    return creds


def _expiring(creds: Credentials) -> bool:
    root = x509.load_pem_x509_certificate(creds.trust_anchors_file.read_bytes())
    return root.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc) < RENEW_BEFORE


def _ca_certificate(organization: str, public_key, signing_key, issuer: x509.Certificate | None,
                    now: datetime.datetime, not_after: datetime.datetime) -> x509.Certificate:
    """A CA certificate as Sentry makes its own (pkg/sentry/server/ca/bundle): the root
    self-signed, the issuer (Sentry's signing certificate) under it, no longer path below it."""
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0 if issuer else None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    return builder.sign(signing_key, hashes.SHA256())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _jwk(public_key: ec.EllipticCurvePublicKey, key_id: str) -> dict:
    numbers = public_key.public_numbers()
    return {"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": key_id,
            "x": _b64(numbers.x.to_bytes(32, "big")), "y": _b64(numbers.y.to_bytes(32, "big"))}


def _jwt(key: ec.EllipticCurvePrivateKey, key_id: str, claims: dict) -> str:
    """An ES256 JWS in compact form (RFC 7515/7518: the signature is r || s, 32 bytes each)."""
    header = _b64(json.dumps({"alg": "ES256", "typ": "JWT", "kid": key_id}).encode())
    payload = _b64(json.dumps(claims).encode())
    r, s = decode_dss_signature(key.sign(f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256())))
    return f"{header}.{payload}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _sentry_configuration(jwks_file: Path) -> str:
    """Sentry's own Configuration (self-hosted: a file). A token validator of our own turns off
    the built-in "insecure" one (pkg/sentry/config)."""
    return (
        "apiVersion: dapr.io/v1alpha1\n"
        "kind: Configuration\n"
        "metadata:\n"
        "  name: daprsystem\n"
        "spec:\n"
        "  mtls:\n"
        "    enabled: true\n"
        "    workloadCertTTL: 24h\n"
        "    allowedClockSkew: 15m\n"
        "    tokenValidators:\n"
        "      - name: jwks\n"
        "        options:\n"
        f"          source: {json.dumps(str(jwks_file))}\n"
    )


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    tmp.replace(path)


# ---- what the processes run with ------------------------------------------------------------

def sentry_address(state: StackState) -> str:
    return f"{HOST}:{state.ports.sentry}"


def sentry_spec(binary: Path, state: StackState, creds: Credentials, env: dict[str, str]) -> ProcessSpec:
    p = state.ports
    return ProcessSpec(
        name="sentry",
        argv=[
            str(binary),
            "--mode=standalone",
            f"--port={p.sentry}",
            f"--listen-address={HOST}",
            f"--healthz-port={p.sentry_healthz}",
            f"--healthz-listen-address={HOST}",
            "--enable-metrics=false",
            f"--trust-domain={CONTROL_PLANE_TRUST_DOMAIN}",
            f"--issuer-credentials={creds.ca_dir}",
            f"--config={creds.sentry_config}",
        ],
        env=dict(env, NAMESPACE=NAMESPACE),
        ports=[p.sentry, p.sentry_healthz],
        healthy=lambda: http_ok(f"http://{HOST}:{p.sentry_healthz}/healthz"),
        kind="ca",
    )


def control_plane_flags(state: StackState, creds: Credentials) -> list[str]:
    """placement's and scheduler's: a TLS server (daprd with mTLS dials them with it)."""
    return ["--tls-enabled", f"--trust-domain={CONTROL_PLANE_TRUST_DOMAIN}",
            f"--trust-anchors-file={creds.trust_anchors_file}", f"--sentry-address={sentry_address(state)}"]


def control_plane_env(creds: Credentials, identity: str) -> dict[str, str]:
    return {"NAMESPACE": NAMESPACE, "DAPR_SENTRY_TOKEN_FILE": str(creds.token_file(identity))}


def sidecar_flags(state: StackState) -> list[str]:
    return ["--enable-mtls", f"--sentry-address={sentry_address(state)}",
            f"--control-plane-trust-domain={CONTROL_PLANE_TRUST_DOMAIN}", f"--control-plane-namespace={NAMESPACE}"]


def sidecar_env(creds: Credentials, app_id: str) -> dict[str, str]:
    return {"NAMESPACE": NAMESPACE, "DAPR_TRUST_ANCHORS": creds.trust_anchors(),
            "DAPR_SENTRY_TOKEN_FILE": str(creds.token_file(app_id))}


def adopt_scheduler_data(etcd_data_dir: Path) -> None:
    """The scheduler's etcd keeps its data under its --id, which was `scheduler-0` before mTLS:
    a run directory from then keeps its jobs and reminders under the new name."""
    old, new = etcd_data_dir / f"{NAMESPACE}-scheduler-0", etcd_data_dir / f"{NAMESPACE}-{SCHEDULER_ID}"
    if old.is_dir() and not new.exists():
        old.rename(new)
