"""Read messages straight from the JetStream stream, as a consumer outside Dapr would."""

from __future__ import annotations

import asyncio
import time
from typing import Callable

import nats


def read_subject(url: str, subject: str, match: Callable[[str], bool], count: int, timeout: float) -> list[str]:
    """Bodies of messages on `subject` for which `match` holds; waits until `count` are found."""
    return asyncio.run(_read(url, subject, match, count, timeout))


async def _read(url, subject, match, count, timeout) -> list[str]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + timeout
        found: list[str] = []
        while time.monotonic() < deadline:
            found = []
            sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy=nats.js.api.DeliverPolicy.ALL)
            try:
                while True:
                    try:
                        msg = await sub.next_msg(timeout=1)
                    except nats.errors.TimeoutError:
                        break
                    body = msg.data.decode(errors="replace")
                    if match(body):
                        found.append(body)
            finally:
                await sub.unsubscribe()
            if len(found) >= count:
                return found
            await asyncio.sleep(0.5)
        return found
    finally:
        await nc.close()
