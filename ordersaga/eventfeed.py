"""Lifecycle events read straight from the stack's broker, as a consumer outside Dapr reads them.

The bench times orders by their terminal event and the tests check what was published; both
read the CloudEvent envelopes Dapr wrote, from JetStream (embedded profile) or Kafka
(production). `read_all` collects what is on a topic now; `follow` calls back for each new one.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Awaitable, Callable

import nats
from nats.js.api import DeliverPolicy

from ordersaga.stack.layout import HOST, StackState

OnEvent = Callable[[bytes], Awaitable[None] | None]


class NatsFeed:
    def __init__(self, url: str):
        self.url = url

    def read_all(self, topic: str, match: Callable[[str], bool], count: int, timeout: float) -> list[str]:
        return asyncio.run(self._read_all(topic, match, count, timeout))

    async def _read_all(self, topic, match, count, timeout) -> list[str]:
        nc = await nats.connect(self.url)
        try:
            js = nc.jetstream()
            deadline = time.monotonic() + timeout
            found: list[str] = []
            while time.monotonic() < deadline:
                found = []
                sub = await js.subscribe(topic, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
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

    def read_numbered(self, topic: str, timeout: float = 10) -> list[tuple[str, str]]:
        """Every message on the topic now, each with a stable id (its stream sequence)."""
        return asyncio.run(self._read_numbered(topic, timeout))

    async def _read_numbered(self, topic: str, timeout: float) -> list[tuple[str, str]]:
        nc = await nats.connect(self.url)
        try:
            sub = await nc.jetstream().subscribe(topic, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
            found: list[tuple[str, str]] = []
            deadline = time.monotonic() + timeout
            try:
                while time.monotonic() < deadline:
                    try:
                        msg = await sub.next_msg(timeout=1)
                    except nats.errors.TimeoutError:
                        break
                    found.append((f"js:{msg.metadata.sequence.stream}", msg.data.decode(errors="replace")))
            finally:
                await sub.unsubscribe()
            return found
        finally:
            await nc.close()

    async def follow(self, topic: str, on_event: OnEvent, stop: asyncio.Event) -> None:
        """New events only (published after this call subscribed), until `stop` is set."""
        nc = await nats.connect(self.url)

        async def deliver(msg):
            await _call(on_event, msg.data)
            await msg.ack()

        sub = await nc.jetstream().subscribe(topic, cb=deliver, deliver_policy=DeliverPolicy.NEW)
        try:
            await stop.wait()
        finally:
            await sub.unsubscribe()
            await nc.close()


class KafkaFeed:
    """A consumer that assigns itself every partition (no group, nothing committed), starting at
    the beginning (`read_all`) or at the end as it is when called (`follow`): no rebalance delay,
    and no event published after the call can be missed."""

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap

    def _consumer(self, topic: str, from_start: bool):
        """A consumer assigned every partition, and where each partition ends now."""
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"ordersaga-feed-{uuid.uuid4().hex}",
                             "enable.auto.commit": False, "enable.partition.eof": False})
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        assignment, ends = [], {}
        for number in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, number), timeout=10)
            assignment.append(TopicPartition(topic, number, low if from_start else high))
            if high > low:
                ends[number] = high
        consumer.assign(assignment)
        return consumer, ends

    def read_all(self, topic: str, match: Callable[[str], bool], count: int, timeout: float) -> list[str]:
        """Every matching message on the topic now (read to its end, as the JetStream reader
        does); read again until at least `count` are there, or `timeout`."""
        deadline = time.monotonic() + timeout
        found: list[str] = []
        while time.monotonic() < deadline:
            found = self._read_to_end(topic, match, deadline)
            if len(found) >= count:
                return found
            time.sleep(0.5)
        return found

    def _read_to_end(self, topic: str, match: Callable[[str], bool], deadline: float) -> list[str]:
        return [body for _, body in self._numbered_to_end(topic, deadline) if match(body)]

    def read_numbered(self, topic: str, timeout: float = 10) -> list[tuple[str, str]]:
        """Every message on the topic now, each with a stable id (partition and offset)."""
        return self._numbered_to_end(topic, time.monotonic() + timeout)

    def _numbered_to_end(self, topic: str, deadline: float) -> list[tuple[str, str]]:
        consumer, ends = self._consumer(topic, from_start=True)
        found: list[tuple[str, str]] = []
        try:
            while ends and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None or msg.error():
                    continue
                found.append((f"kafka:{msg.partition()}:{msg.offset()}", msg.value().decode(errors="replace")))
                if msg.offset() + 1 >= ends.get(msg.partition(), 0):
                    ends.pop(msg.partition(), None)
            return found
        finally:
            consumer.close()

    async def follow(self, topic: str, on_event: OnEvent, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        consumer, _ = self._consumer(topic, from_start=False)
        halt = threading.Event()

        def poll() -> None:  # the client blocks: it polls in a thread and hands events to the loop
            while not halt.is_set():
                msg = consumer.poll(0.2)
                if msg is not None and not msg.error():
                    asyncio.run_coroutine_threadsafe(_call(on_event, msg.value()), loop)
            consumer.close()

        thread = threading.Thread(target=poll, name="kafka-feed", daemon=True)
        thread.start()
        try:
            await stop.wait()
        finally:
            halt.set()
            await asyncio.to_thread(thread.join, 10)


async def _call(on_event: OnEvent, body: bytes) -> None:
    result = on_event(body)
    if asyncio.iscoroutine(result):
        await result


def feed_for(state: StackState) -> NatsFeed | KafkaFeed:
    if state.profile == "production":
        return KafkaFeed(f"{HOST}:{state.ports.kafka}")
    return NatsFeed(f"nats://{HOST}:{state.ports.nats}")
