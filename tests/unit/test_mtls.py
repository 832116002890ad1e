"""mTLS and access control on the local stack, as `ordersaga up` sets them up (ordersaga/stack/
sentry.py): what each process is started with, the CA and the tokens in the run directory, and
the services' Configuration. The real stack's behaviour is in tests/e2e/test_security.py."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ordersaga.stack import sentry
from ordersaga.stack.layout import APPS, Ports, StackState
from ordersaga.stack.processes import ProcessRecord, proc_start_time
from ordersaga.stack.profiles import Embedded
from ordersaga.stack.runtime import DaprBinaries, project_root
from ordersaga.stack.stack import Stack, StackError, stop_order

COMPONENTS = project_root() / "components"
SERVICES = [app for app in APPS if app != "order-service"]


def specs_of(tmp_path: Path, monkeypatch, mtls: bool = True, extra_env: dict | None = None):
    monkeypatch.setattr("ordersaga.stack.jetstream.nats_server_binary", lambda: "nats-server")
    stack = Stack(tmp_path / ".ordersaga", log=lambda message: None, extra_env=extra_env or {})
    stack.run_dir.mkdir(parents=True)
    state = StackState(stack.run_dir, Ports.allocate(1), mtls=mtls)
    fake = DaprBinaries(daprd=Path("daprd"), placement=Path("placement"), scheduler=Path("scheduler"),
                        sentry=Path("sentry"), version="1.18.3", source="test")
    return state, {spec.name: spec for spec in stack._specs(state, fake, Embedded())}


def flag(argv: list[str], name: str) -> str:
    return next(arg.split("=", 1)[1] for arg in argv if arg.startswith(f"--{name}="))


def test_sentry_runs_first_on_loopback_with_the_stacks_ca(tmp_path, monkeypatch):
    state, specs = specs_of(tmp_path, monkeypatch)
    spec = specs["sentry"]
    assert spec.kind == "ca" and spec.ports == [state.ports.sentry, state.ports.sentry_healthz]
    assert flag(spec.argv, "listen-address") == flag(spec.argv, "healthz-listen-address") == "127.0.0.1"
    assert flag(spec.argv, "issuer-credentials") == str(state.run_dir / "tls" / "ca")
    assert flag(spec.argv, "trust-domain") == "localhost"
    config = yaml.safe_load(Path(flag(spec.argv, "config")).read_text())
    assert config["spec"]["mtls"]["tokenValidators"] == [
        {"name": "jwks", "options": {"source": str(state.run_dir / "tls" / "jwks.json")}}]


def test_placement_scheduler_and_every_sidecar_speak_mtls(tmp_path, monkeypatch):
    state, specs = specs_of(tmp_path, monkeypatch)
    address = f"127.0.0.1:{state.ports.sentry}"
    anchors = state.run_dir / "tls" / "ca" / "ca.crt"
    for name, identity in (("placement", "dapr-placement"), ("scheduler", "dapr-scheduler")):
        argv, env = specs[name].argv, specs[name].env
        assert "--tls-enabled" in argv and flag(argv, "sentry-address") == address
        assert flag(argv, "trust-anchors-file") == str(anchors)
        assert env["DAPR_SENTRY_TOKEN_FILE"] == str(state.run_dir / "tls" / "tokens" / f"{identity}.jwt")
    # The scheduler's etcd wants its certificate to name it as Sentry names scheduler pods.
    assert flag(specs["scheduler"].argv, "id") == "dapr-scheduler-server-0"
    assert flag(specs["scheduler"].argv, "etcd-initial-cluster").startswith("dapr-scheduler-server-0=")
    for app_id in APPS:
        argv, env = specs[f"{app_id}-daprd"].argv, specs[f"{app_id}-daprd"].env
        assert "--enable-mtls" in argv and flag(argv, "sentry-address") == address
        assert env["DAPR_TRUST_ANCHORS"] == anchors.read_text()
        assert env["DAPR_SENTRY_TOKEN_FILE"] == str(state.run_dir / "tls" / "tokens" / f"{app_id}.jwt")
        assert env["NAMESPACE"] == "default"


def test_the_services_sidecars_get_the_configuration_with_access_control(tmp_path, monkeypatch):
    _, specs = specs_of(tmp_path, monkeypatch)
    assert flag(specs["order-service-daprd"].argv, "config") == str(COMPONENTS / "config.yaml")
    for app_id in SERVICES:
        assert flag(specs[f"{app_id}-daprd"].argv, "config") == str(COMPONENTS / "config-services.yaml")


def test_rendered_configurations_keep_the_access_control(tmp_path, monkeypatch):
    """A retention setting renders both Configurations into the run directory, each its own."""
    _, specs = specs_of(tmp_path, monkeypatch, extra_env={"ORDERSAGA_WORKFLOW_RETENTION_S": "60"})
    order = yaml.safe_load(Path(flag(specs["order-service-daprd"].argv, "config")).read_text())
    payment = yaml.safe_load(Path(flag(specs["payment-service-daprd"].argv, "config")).read_text())
    assert "accessControl" not in order["spec"] and payment["spec"]["accessControl"]["defaultAction"] == "deny"
    assert order["spec"]["workflow"] == payment["spec"]["workflow"] == {"stateRetentionPolicy": {"anyTerminal": "60s"}}


def test_without_mtls_no_sentry_and_no_access_control(tmp_path, monkeypatch):
    """ORDERSAGA_MTLS=off (to measure what mTLS costs): access control needs the callers'
    certificates, so the services' sidecars get order-service's Configuration then."""
    _, specs = specs_of(tmp_path, monkeypatch, mtls=False)
    assert "sentry" not in specs and not (tmp_path / ".ordersaga" / "tls").exists()
    for name in ("placement", "scheduler", *(f"{app}-daprd" for app in APPS)):
        assert not [arg for arg in specs[name].argv if arg.startswith(("--tls", "--trust", "--sentry", "--enable-mtls",
                                                                        "--identity"))], name
        assert "DAPR_TRUST_ANCHORS" not in specs[name].env
    for app_id in APPS:
        assert flag(specs[f"{app_id}-daprd"].argv, "config") == str(COMPONENTS / "config.yaml")


def test_local_stacks_turn_fault_injection_on_unless_told_otherwise(tmp_path, monkeypatch):
    _, specs = specs_of(tmp_path, monkeypatch)
    assert {specs[app].env["ORDERSAGA_FAULT_INJECTION"] for app in APPS} == {"on"}
    _, specs = specs_of(tmp_path / "off", monkeypatch, extra_env={"ORDERSAGA_FAULT_INJECTION": "off"})
    assert {specs[app].env["ORDERSAGA_FAULT_INJECTION"] for app in APPS} == {"off"}


# ---- the CA and the tokens --------------------------------------------------------------------

def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_the_ca_is_the_users_alone_and_the_issuer_is_under_the_root(tmp_path):
    creds = sentry.ensure_credentials(tmp_path)
    for folder in (creds.root, creds.ca_dir, creds.root / "tokens"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in [*creds.ca_dir.iterdir(), *(creds.root / "tokens").iterdir(), creds.jwks_file]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    root = x509.load_pem_x509_certificate(creds.trust_anchors_file.read_bytes())
    issuer = x509.load_pem_x509_certificate((creds.ca_dir / "issuer.crt").read_bytes())
    issuer.verify_directly_issued_by(root)
    assert issuer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_each_identity_has_a_token_signed_by_the_stacks_key(tmp_path):
    creds = sentry.ensure_credentials(tmp_path)
    (key,) = json.loads(creds.jwks_file.read_text())["keys"]
    public = ec.EllipticCurvePublicNumbers(int.from_bytes(_b64decode(key["x"]), "big"),
                                           int.from_bytes(_b64decode(key["y"]), "big"), ec.SECP256R1()).public_key()
    for identity in [*APPS, "dapr-placement", "dapr-scheduler"]:
        header, payload, signature = creds.token_file(identity).read_text().split(".")
        raw = _b64decode(signature)
        public.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
                      f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
        assert json.loads(_b64decode(header)) == {"alg": "ES256", "typ": "JWT", "kid": key["kid"]}
        claims = json.loads(_b64decode(payload))
        assert claims["aud"] == "spiffe://localhost/ns/default/dapr-sentry"
        domain = "localhost" if identity.startswith("dapr-") else "public"
        assert claims["sub"] == f"spiffe://{domain}/ns/default/{identity}"


def test_the_ca_is_made_once_and_renewed_only_when_it_expires(tmp_path, monkeypatch):
    first = sentry.ensure_credentials(tmp_path).trust_anchors()
    assert sentry.ensure_credentials(tmp_path, renew=True).trust_anchors() == first
    monkeypatch.setattr(sentry, "RENEW_BEFORE", sentry.CA_VALIDITY * 2)  # as if it expired within the month
    assert sentry.ensure_credentials(tmp_path).trust_anchors() == first  # not while processes run
    assert sentry.ensure_credentials(tmp_path, renew=True).trust_anchors() != first


def test_the_scheduler_keeps_its_data_under_its_new_name(tmp_path):
    old = tmp_path / "default-scheduler-0" / "dapr-0.1"
    old.mkdir(parents=True)
    (old / "member").write_text("jobs")
    sentry.adopt_scheduler_data(tmp_path)
    assert (tmp_path / "default-dapr-scheduler-server-0" / "dapr-0.1" / "member").read_text() == "jobs"
    sentry.adopt_scheduler_data(tmp_path)  # nothing left to move
    assert not (tmp_path / "default-scheduler-0").exists()


# ---- switching it ----------------------------------------------------------------------------

def _running_state(tmp_path: Path, mtls: bool | None) -> None:
    state = StackState(tmp_path, Ports.allocate(1), mtls=mtls)
    state.processes["nats"] = ProcessRecord("nats", os.getpid(), proc_start_time(os.getpid()), "", "broker")
    state.save()


def test_mtls_cannot_change_while_the_stack_runs(tmp_path, monkeypatch):
    _running_state(tmp_path, mtls=True)
    monkeypatch.setenv("ORDERSAGA_MTLS", "off")
    with pytest.raises(StackError, match="runs with mTLS"):
        Stack(tmp_path)._load_or_new(None, None)
    monkeypatch.setenv("ORDERSAGA_MTLS", "sometimes")
    with pytest.raises(StackError, match="ORDERSAGA_MTLS must be on or off"):
        Stack(tmp_path)._load_or_new(None, None)
    monkeypatch.delenv("ORDERSAGA_MTLS")
    assert Stack(tmp_path)._load_or_new(None, None).mtls is True  # the stack's own


def test_a_stack_from_before_mtls_is_not_half_upgraded(tmp_path, monkeypatch):
    monkeypatch.delenv("ORDERSAGA_MTLS", raising=False)
    _running_state(tmp_path, mtls=None)  # processes started without it
    with pytest.raises(StackError, match="runs without mTLS"):
        Stack(tmp_path)._load_or_new(None, None)
    (tmp_path / "cold").mkdir()
    StackState(tmp_path / "cold", Ports.allocate(1), mtls=None).save()  # nothing runs: on, as a new stack
    assert Stack(tmp_path / "cold")._load_or_new(None, None).mtls is True


def test_sentry_stops_after_the_processes_it_signed_for():
    records = [ProcessRecord(n, 1, 1, "", k) for n, k in
               (("sentry", "ca"), ("scheduler", "control"), ("order-service-daprd", "sidecar"))]
    assert stop_order(records) == ["order-service-daprd", "scheduler", "sentry"]


# ---- the services' Configuration -----------------------------------------------------------

def test_the_services_configuration_is_order_services_plus_access_control():
    order = yaml.safe_load((COMPONENTS / "config.yaml").read_text())
    services = yaml.safe_load((COMPONENTS / "config-services.yaml").read_text())
    acl = services["spec"].pop("accessControl")
    assert services["metadata"] == {"name": "ordersaga-services"}
    assert services["spec"] == order["spec"]
    assert acl == {"defaultAction": "deny", "trustDomain": "public", "policies": [
        {"appId": "order-service", "defaultAction": "allow", "trustDomain": "public", "namespace": "default"}]}
    policy = acl["policies"][0]
    assert sentry.spiffe_id("order-service") == \
        f"spiffe://{policy['trustDomain']}/ns/{policy['namespace']}/{policy['appId']}"
