"""The local Kafka broker's set-up (ordersaga/stack/kafka.py), without starting it."""

from __future__ import annotations

from ordersaga.stack import kafka


def test_the_local_kafka_flushes_every_message(tmp_path):
    config = tmp_path / "server.properties"
    kafka.write_config(config, host="127.0.0.1", port=1, controller_port=2, log_dir=tmp_path)
    assert "log.flush.interval.messages=1\n" in config.read_text()


def test_a_cluster_id_that_starts_with_a_dash_is_not_read_as_an_option(tmp_path, monkeypatch):
    """Kafka's ids are url-safe base64: one in 64 starts with '-' (a bench run failed so)."""
    seen = []
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: type("U", (), {"bytes": b"\xfb" + bytes(15)})())
    monkeypatch.setattr(kafka.subprocess, "run", lambda argv, **kw: seen.append(argv) or
                        type("P", (), {"returncode": 0, "stdout": "", "stderr": ""})())
    dist = type("Dist", (), {"java": "java", "classpath": "libs/*", "home": tmp_path})()
    kafka.format_storage(dist, tmp_path / "server.properties", tmp_path / "logs")
    (argv,) = seen
    assert any(arg.startswith("--cluster-id=-") for arg in argv), argv
