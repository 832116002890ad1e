"""What the brokers promise: an approval the broker acknowledged survives power loss (issue 18).
The embedded profile's JetStream fsyncs every message before it acknowledges it; the running
broker says so itself on its monitoring endpoint."""

from __future__ import annotations

import json
import urllib.request

from ordersaga.stack import kafka


def test_the_embedded_broker_syncs_every_message_before_it_acknowledges(stack):
    port = stack.state().ports.nats_monitor
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/jsz?config=true", timeout=10) as response:
        config = json.loads(response.read())["config"]
    assert config["sync_always"] is True, config


def test_the_local_kafka_flushes_every_message(tmp_path):
    config = tmp_path / "server.properties"
    kafka.write_config(config, host="127.0.0.1", port=1, controller_port=2, log_dir=tmp_path)
    assert "log.flush.interval.messages=1\n" in config.read_text()
