"""What the brokers promise: an approval the broker acknowledged survives power loss (issue 18).
The embedded profile's JetStream fsyncs every message before it acknowledges it; the running
broker says so itself on its monitoring endpoint."""

from __future__ import annotations

import json
import urllib.request


def test_the_embedded_broker_syncs_every_message_before_it_acknowledges(stack):
    port = stack.state().ports.nats_monitor
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/jsz?config=true", timeout=10) as response:
        config = json.loads(response.read())["config"]
    assert config["sync_always"] is True, config
