"""What the bench measures with and how: the load (orders placed over the public gRPC API, their
ends read from the `order-events` topic on the broker), a step's figures (sagas/s, latency,
errors, CPU and memory of every process, store growth) and the table rows. `ordersaga.bench`
(its docstring says what the bench runs) puts the rows together.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import json
import random
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from order_service import orders_pb2 as pb
from order_service import orders_pb2_grpc as orders_grpc
from order_service.admission import RETRY_PUSHBACK_KEY
from order_service.topics import EVENTS_TOPIC
from ordersaga.bench.spread import HotSkus, ZipfSkus
from ordersaga.client import SagaClient
from ordersaga.eventfeed import feed_for
from ordersaga.stack import postgres
from ordersaga.stack.layout import HOST, StackState
from ordersaga.stack.profiles import DATABASES

TERMINAL_EVENTS = {"completed", "failed", "cancelled", "needs_attention"}
CLOCK_TICKS = 100  # os.sysconf("SC_CLK_TCK") on Linux
LABEL_WIDTH = 38  # the longest row label: "open 80/s, 3 lines, zipf 1000 SKUs"


@dataclass
class Scenario:
    name: str
    lines: int = 3
    decline_share: float = 0.0  # orders whose customer has too little credit
    approval: bool = False  # every order waits for an approval published over pub/sub


SCENARIOS = {
    "no-approval": Scenario("no-approval"),
    "approval": Scenario("approval", approval=True),
    "fanout-1": Scenario("fanout-1", lines=1),
    "fanout-10": Scenario("fanout-10", lines=10),
    "declines-20": Scenario("declines-20", decline_share=0.2),
}


@dataclass
class StepResult:
    label: str
    offered: int
    completed: int = 0
    errors: int = 0
    error_codes: collections.Counter = field(default_factory=collections.Counter)
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)
    store_growth_kb: float = 0.0
    accepted: list[str] = field(default_factory=list)  # order ids PlaceOrder answered OK
    refused: list[str] = field(default_factory=list)  # answered RESOURCE_EXHAUSTED: never created
    refusal_ms: list[float] = field(default_factory=list)  # how long each refusal took to come back
    refusal_detail: str = ""  # the first refusal's message (its retry hint)
    failed: list[str] = field(default_factory=list)  # other errors: the order may exist or not
    never_created: list[str] = field(default_factory=list)  # failed ones GetOrder did not find afterwards
    ended: dict[str, float] = field(default_factory=dict)  # order id -> latency (s), orders that ended

    @property
    def rate(self) -> float:
        """Completed sagas per second over the step."""
        return self.completed / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000


# ---- process and disk figures ------------------------------------------------------------------

def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pid: int) -> float:
    """CPU of a process and of its children: PostgreSQL works in a forked backend per
    connection, so the postmaster alone would show almost nothing. Live children count by
    their own times, reaped ones through the parent's cutime/cstime."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    for child in _children(pid):
        child_fields = _stat(child)
        if child_fields:
            ticks += sum(int(f) for f in child_fields[11:15])
    return ticks / CLOCK_TICKS


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return [int(c) for task in tasks for c in (task / "children").read_text().split()]
    except OSError:
        return []


def _memory_mb(pid: int, field: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def peak_rss_mb(pid: int) -> float:
    return _memory_mb(pid, "VmHWM")


def rss_mb(pid: int) -> float:
    return _memory_mb(pid, "VmRSS")


def store_bytes(state: StackState) -> int:
    """What the state stores hold: the SQLite files (with their WAL), or the PostgreSQL
    databases' size (tables and indexes; the WAL is recycled in 16 MB segments, too coarse)."""
    if state.profile == "production":
        import psycopg

        dsn = postgres.connection_string(HOST, state.ports.postgres, state.postgres_password, "postgres")
        names = [database for database, _ in DATABASES.values()]
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            row = conn.execute("SELECT sum(pg_database_size(datname)) FROM pg_database WHERE datname = ANY(%s)",
                               (names,)).fetchone()
        return int(row[0] or 0)
    return sum(p.stat().st_size for p in (state.run_dir / "data").glob("*.db*"))


def db_file_bytes(state: StackState) -> int | None:
    """SQLite only: the main database files without their -wal and -shm. The WAL grows to its
    high-water mark and stays there (checkpoints reuse it, they do not shrink it), so the main
    files show what the stores keep; None for PostgreSQL, whose size excludes its WAL already."""
    if state.profile == "production":
        return None
    return sum(p.stat().st_size for p in (state.run_dir / "data").glob("*.db"))


def workflow_state_bytes(state: StackState) -> int | None:
    """SQLite only: the bytes of the workflow engine's rows in order-service's store (the keys of
    Dapr's internal workflow and activity actors): the part the retention policy purges. None
    for PostgreSQL."""
    if state.profile == "production":
        return None
    db = state.run_dir / "data" / "order-service.db"
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        (total,) = conn.execute("SELECT coalesce(sum(length(key) + length(value)), 0) FROM state WHERE key LIKE ?",
                                ("%||dapr.internal.%",)).fetchone()
    return int(total)


@dataclass
class Usage:
    """Each process's CPU seconds and the stores' size at one moment: what a phase cost."""

    pids: dict[str, int]
    cpu: dict[str, float]
    state: StackState
    store: int

    @classmethod
    def now(cls, state: StackState) -> "Usage":
        pids = {name: proc.pid for name, proc in state.processes.items()}
        return cls(pids, {n: cpu_seconds(p) for n, p in pids.items()}, state, store_bytes(state))

    def cpu_since(self) -> dict[str, float]:
        return {n: cpu_seconds(p) - self.cpu[n] for n, p in self.pids.items()}

    def store_kb_since(self) -> float:
        return (store_bytes(self.state) - self.store) / 1024


async def lookup(stub: orders_grpc.OrderServiceStub, metadata: tuple, order_ids: list[str]) -> dict[str, str]:
    """GetOrder for each id: "found", or the error code's name ("NOT_FOUND": never created)."""
    answers = {}
    for order_id in order_ids:
        try:
            await stub.GetOrder(pb.GetOrderRequest(order_id=order_id), metadata=metadata, timeout=30)
            answers[order_id] = "found"
        except grpc.RpcError as error:
            answers[order_id] = error.code().name
    return answers


# ---- load ------------------------------------------------------------------------------------------

class Bench:
    def __init__(self, state: StackState):
        self.state = state
        self.client = SagaClient(state)
        self.run = uuid.uuid4().hex[:6]
        self.sku_stock = 10**9
        self.hot = HotSkus(f"bench-{self.run}")
        self.skus = self.hot.skus
        for sku in self.skus:
            self.client.set_stock(sku, self.sku_stock)
        self._zipf: ZipfSkus | None = None  # stocked on first use: 1,000 SetStock calls
        self.poor = f"bench-{self.run}-poor"
        self.client.set_credit(self.poor, 1)
        self.steps = 0
        self.done: dict[str, tuple[float, str]] = {}  # order id -> (time, event type)
        self.sent: dict[str, float] = {}

    def spread(self, name: str) -> HotSkus | ZipfSkus:
        """The SKU spread `name` ("hot" or "zipf"), its stock seeded before it is first used."""
        if name == "hot":
            return self.hot
        if self._zipf is None:
            zipf = ZipfSkus(f"bench-{self.run}")
            self.seed_stock(zipf.skus)
            self._zipf = zipf
        return self._zipf

    def seed_stock(self, skus: list[str], workers: int = 16) -> None:
        """Stock for every SKU, `workers` SetStock calls at a time (one by one, 1,000 SKUs take
        about 10 s through two sidecars); a progress line every 5 s if it takes longer."""
        started = time.monotonic()
        next_report = started + 5
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            futures = [pool.submit(self.client.set_stock, sku, self.sku_stock) for sku in skus]
            for n, future in enumerate(concurrent.futures.as_completed(futures), 1):
                future.result()  # a failed SetStock stops the bench: the orders would fail anyway
                if time.monotonic() >= next_report:
                    next_report += 5
                    print(f"    stocking {len(skus)} SKUs: {n} done after {time.monotonic() - started:.0f}s",
                          flush=True)
        print(f"    stocked {len(skus)} SKUs in {time.monotonic() - started:.1f}s", flush=True)

    def order_api(self) -> tuple[grpc.aio.Channel, orders_grpc.OrderServiceStub, tuple]:
        """The public OrderService through order-service's sidecar: channel, stub, call metadata.
        With replicas, one sidecar takes the calls; Dapr spreads them over the apps' replicas."""
        port = self.state.app_ports("order-service")[0].dapr_grpc
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        metadata = (("dapr-api-token", self.state.api_token), ("dapr-app-id", "order-service"))
        return channel, orders_grpc.OrderServiceStub(channel), metadata

    async def _listen(self, stop: asyncio.Event) -> None:
        def on_event(body: bytes) -> None:
            data = json.loads(body)["data"]
            if data["type"] in TERMINAL_EVENTS and data["order_id"] in self.sent:
                self.done.setdefault(data["order_id"], (time.monotonic(), data["type"]))
            elif data["type"] == "approval_requested" and data["order_id"] in self.sent:
                asyncio.get_running_loop().run_in_executor(None, self.client.approve, data["order_id"], "approve",
                                                           "bench")

        await feed_for(self.state).follow(EVENTS_TOPIC, on_event, stop)

    def _order(self, scenario: Scenario, step: int, number: int, spread: HotSkus | ZipfSkus | None = None,
               rng: random.Random | None = None) -> pb.PlaceOrderRequest:
        order_id = f"b-{self.run}-{step}-{scenario.name}-{number}"
        declined = scenario.decline_share and (number % round(1 / scenario.decline_share) == 0)
        customer = self.poor if declined else f"bench-{self.run}-c{number % 50}"
        price = 200_000 if scenario.approval else 100
        skus = (spread or self.hot).pick(rng, scenario.lines)
        items = [pb.LineItem(sku=sku, quantity=1, unit_price_cents=price) for sku in skus]
        return pb.PlaceOrderRequest(order_id=order_id, customer_id=customer, items=items)

    async def place(self, stub: orders_grpc.OrderServiceStub, metadata: tuple, request: pb.PlaceOrderRequest,
                    result: StepResult) -> bool:
        """One PlaceOrder, its answer recorded in `result`: accepted, refused (admission control's
        RESOURCE_EXHAUSTED, with how fast it came back) or another error. False if refused: that
        order will never end."""
        sent = self.sent[request.order_id] = time.monotonic()
        try:
            await stub.PlaceOrder(request, metadata=metadata, timeout=30)
            result.accepted.append(request.order_id)
        except grpc.RpcError as error:
            result.errors += 1
            result.error_codes[error.code().name] += 1
            if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                result.refused.append(request.order_id)
                result.refusal_ms.append((time.monotonic() - sent) * 1000)
                result.refusal_detail = result.refusal_detail or (error.details() or "")
                return False
            result.failed.append(request.order_id)
        return True

    async def drain(self, result: StepResult, stub: orders_grpc.OrderServiceStub, metadata: tuple,
                    started: float, drain_s: float) -> None:
        """Wait up to `drain_s` for every order that may exist to end (a progress line every 30
        s): the accepted ones, and those whose PlaceOrder failed otherwise (a timeout can come
        after the order was stored), except those GetOrder does not find once the accepted ones
        have ended (`result.never_created`). A refused order does not exist: it never ends."""
        waiting = result.accepted + result.failed
        looked_up = False
        deadline = time.monotonic() + drain_s
        next_report = time.monotonic() + 30
        while time.monotonic() < deadline and any(order_id not in self.done for order_id in waiting):
            if not looked_up and all(order_id in self.done for order_id in result.accepted):
                looked_up = True
                found = await lookup(stub, metadata, [i for i in result.failed if i not in self.done])
                result.never_created = sorted(i for i, answer in found.items() if answer == "NOT_FOUND")
                waiting = [i for i in waiting if i not in set(result.never_created)]
                continue
            await asyncio.sleep(0.05)
            if time.monotonic() >= next_report:
                next_report += 30
                ended = sum(order_id in self.done for order_id in waiting)
                print(f"    {result.label}: {ended}/{len(waiting)} ended after {time.monotonic() - started:.0f}s",
                      flush=True)

    async def step(self, scenario: Scenario, label: str, rate: float | None, count: int,
                   drain_s: float = 300, spread: HotSkus | ZipfSkus | None = None) -> StepResult:
        """`rate` orders/s (open loop), or None: one at a time (closed loop). Then wait up to
        `drain_s` for every order not refused to end."""
        channel, stub, metadata = self.order_api()
        usage = Usage.now(self.state)
        result = StepResult(label, offered=count)
        stop = asyncio.Event()
        listener = asyncio.create_task(self._listen(stop))
        await asyncio.sleep(0.5)
        self.steps += 1
        spread = spread or self.hot
        rng = spread.rng()
        requests = [self._order(scenario, self.steps, n, spread, rng) for n in range(count)]
        started = time.monotonic()

        if rate is None:
            for request in requests:
                if not await self.place(stub, metadata, request, result):
                    continue
                deadline = time.monotonic() + drain_s
                while request.order_id not in self.done and time.monotonic() < deadline:
                    await asyncio.sleep(0.002)
        else:
            tasks = []
            for n, request in enumerate(requests):
                await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
                tasks.append(asyncio.create_task(self.place(stub, metadata, request, result)))
            await asyncio.gather(*tasks)
            await self.drain(result, stub, metadata, started, drain_s)
        stop.set()
        await listener
        await channel.close()
        self.tally(result, [r.order_id for r in requests], started, usage)
        return result

    async def burst(self, scenario: Scenario, label: str, count: int, drain_s: float = 300) -> StepResult:
        """`count` orders placed at once, each retried as a refusal's pushback says until it is
        taken (what a client does): the engine row's shape ("N at once"), so the two compare.
        Latency runs from the first attempt; refusals are counted, not errors."""
        channel, stub, metadata = self.order_api()
        usage = Usage.now(self.state)
        result = StepResult(label, offered=count)
        stop = asyncio.Event()
        listener = asyncio.create_task(self._listen(stop))
        await asyncio.sleep(0.5)
        self.steps += 1
        requests = [self._order(scenario, self.steps, n) for n in range(count)]
        refusals = 0

        async def place(request: pb.PlaceOrderRequest) -> None:
            nonlocal refusals
            first = time.monotonic()
            while True:
                attempt = StepResult(label, offered=1)
                if await self.place(stub, metadata, request, attempt):
                    result.accepted += attempt.accepted
                    result.failed += attempt.failed
                    result.errors += attempt.errors
                    result.error_codes.update(attempt.error_codes)
                    break
                refusals += 1
                await asyncio.sleep(0.5)  # the stack's pushback (ORDERSAGA_RETRY_AFTER_MS, 500 ms)
            self.sent[request.order_id] = first

        started = time.monotonic()
        await asyncio.gather(*(place(request) for request in requests))
        await self.drain(result, stub, metadata, started, drain_s)
        stop.set()
        await listener
        await channel.close()
        self.tally(result, [r.order_id for r in requests], started, usage)
        result.refusal_detail = f"{refusals} refusals retried"
        return result

    def tally(self, result: StepResult, order_ids: list[str], started: float, usage: Usage) -> None:
        """A step's figures: when its last order ended, each ended order's latency, and what every
        process and the stores spent since `usage` was taken."""
        ends = [self.done[order_id][0] for order_id in order_ids if order_id in self.done]
        result.elapsed = (max(ends) if ends else time.monotonic()) - started
        for order_id in order_ids:
            if order_id in self.done:
                result.completed += 1
                result.latencies.append(self.done[order_id][0] - self.sent[order_id])
                result.ended[order_id] = result.latencies[-1]
        result.cpu = usage.cpu_since()
        result.rss_mb = {name: peak_rss_mb(pid) for name, pid in usage.pids.items()}
        result.store_growth_kb = usage.store_kb_since()


# ---- report ----------------------------------------------------------------------------------------

def print_step(result: StepResult) -> None:
    rate = result.completed / result.elapsed if result.elapsed else 0.0
    per_saga_kb = result.store_growth_kb / max(result.completed, 1)
    cpu = sum(result.cpu.values())
    print(f"{result.label:<{LABEL_WIDTH}} {result.offered:>6} {result.completed:>6} {rate:>8.1f} "
          f"{result.percentile(50):>8.0f} {result.percentile(95):>8.0f} {result.percentile(99):>8.0f} "
          f"{result.errors:>6} {cpu:>7.1f} {cpu * 1000 / max(result.completed, 1):>8.0f} {per_saga_kb:>8.1f}",
          flush=True)


def print_processes(result: StepResult) -> None:
    if result.errors:
        codes = ", ".join(f"{code} {n}" for code, n in result.error_codes.most_common())
        print(f"    errors, {result.label}: {codes}")
    print(f"    per process, {result.label}: " + ", ".join(
        f"{name} {result.cpu[name]:.1f}s/{result.rss_mb[name]:.0f}MB" for name in sorted(result.cpu)), flush=True)


HEADER = (f"{'step':<{LABEL_WIDTH}} {'orders':>6} {'done':>6} {'sagas/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
          f"{'errors':>6} {'cpu s':>7} {'cpu ms/saga':>8} {'KB/saga':>8}")


def _pushback_s(error: grpc.RpcError, default_s: float = 0.5) -> float:
    """The retry hint of a refusal (gRPC's `grpc-retry-pushback-ms` trailer), in seconds."""
    for key, value in error.trailing_metadata() or ():
        if key == RETRY_PUSHBACK_KEY:
            return int(value) / 1000
    return default_s
