"""The scale row (`--parked N`): N orders parked at approval at once, what each one costs, the
queries and the bulk approval that drains them.

1. Park N orders (16 PlaceOrder calls in flight, as admission control lets them in), with the
   memory of every process and the size of every store at checkpoints (a tenth, a quarter, half,
   all): the cost per parked order between two checkpoints shows whether it grows with the
   number parked.
2. At rest (after the actors' idle timeout, so what is left is what waiting costs): memory per
   process (the scheduler's etcd is inside the scheduler) and bytes on disk per parked order.
3. ListOrders at that size: the first page, a filtered page, the next page (median of five).
4. Beside them: a closed loop of 20 orders.
5. A bulk approval of all of them (one StartBulkAction), drained: completed orders per second
   over the run, CPU per approved order, and what bounds it.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path

import grpc

from order_service import orders_pb2 as pb
from order_service.topics import EVENTS_TOPIC
from ordersaga.bench.core import (
    SCENARIOS,
    TERMINAL_EVENTS,
    Bench,
    Usage,
    _children,
    _pushback_s,
    print_step,
    rss_mb,
    store_bytes,
)
from ordersaga.eventfeed import feed_for

CHECKPOINTS = (0.1, 0.25, 0.5, 1.0)
CORES = 2


def memory_mb(pids: dict[str, int]) -> dict[str, float]:
    """Resident memory per process, with its children (PostgreSQL's backends)."""
    return {name: rss_mb(pid) + sum(rss_mb(child) for child in _children(pid)) for name, pid in pids.items()}


def disk_bytes(bench: Bench) -> dict[str, int]:
    """The state stores, the scheduler's etcd and the broker's files."""
    data = bench.state.run_dir / "data"
    return {"stores": store_bytes(bench.state), "scheduler etcd": _tree_bytes(data / "scheduler"),
            "broker": _tree_bytes(data / "nats") if bench.state.profile != "production" else
            _tree_bytes(data / "kafka")}


def _tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def _mb(value: float) -> str:
    return f"{value:.0f}MB"


def _per_order_kb(before: dict[str, float], after: dict[str, float], orders: int, unit: float) -> dict[str, float]:
    return {name: (after.get(name, 0) - before.get(name, 0)) * unit / max(orders, 1) for name in after}


async def scale(bench: Bench, count: int, rest_s: float = 30, idle_s: float = 0, approve: bool = True,
                timeout_s: float = 6 * 3600) -> None:
    pids = {name: proc.pid for name, proc in bench.state.processes.items()}
    channel, stub, metadata = bench.order_api()
    base_memory, base_disk = memory_mb(pids), disk_bytes(bench)
    print(f"scale: {count} orders to park; before: memory {sum(base_memory.values()):.0f} MB over "
          f"{len(pids)} processes, disk {sum(base_disk.values()) / 2**20:.0f} MB", flush=True)
    usage = Usage.now(bench.state)
    prefix = f"park-{bench.run}-"
    customers = [f"park-{bench.run}-c{n}" for n in range(100)]
    for customer in customers:  # room for every hold: the default credit covers 50 such orders
        bench.client.set_credit(customer, 10**12)
    parked: set[str] = set()
    ended: dict[str, str] = {}
    completed_at: list[float] = []

    def on_event(body: bytes) -> None:
        data = json.loads(body)["data"]
        order_id = data["order_id"]
        if not order_id.startswith(prefix):
            return
        if data["type"] == "approval_requested":
            parked.add(order_id)
        elif data["type"] in TERMINAL_EVENTS and order_id not in ended:
            ended[order_id] = data["type"]
            completed_at.append(time.monotonic())

    stop = asyncio.Event()
    listener = asyncio.create_task(feed_for(bench.state).follow(EVENTS_TOPIC, on_event, stop))
    await asyncio.sleep(0.5)
    errors = 0
    started = time.monotonic()
    queue = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)

    async def placer() -> None:
        nonlocal errors
        while not queue.empty():
            n = queue.get_nowait()
            request = pb.PlaceOrderRequest(order_id=f"{prefix}{n}", customer_id=customers[n % 100], items=[
                pb.LineItem(sku=bench.skus[0], quantity=1, unit_price_cents=200_000)])
            while True:
                try:
                    await stub.PlaceOrder(request, metadata=metadata, timeout=60)
                except grpc.RpcError as error:
                    if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:  # admission control: as told
                        await asyncio.sleep(_pushback_s(error))
                        continue
                    errors += 1
                break

    placing = asyncio.gather(*(placer() for _ in range(16)))
    checkpoints = [max(1, round(count * share)) for share in CHECKPOINTS]
    last_memory, last_disk, last_n = base_memory, base_disk, 0
    next_report = started + 30
    while len(parked) + len(ended) < count - errors and time.monotonic() - started < timeout_s:
        await asyncio.sleep(0.5)
        if checkpoints and len(parked) >= checkpoints[0]:
            n = checkpoints.pop(0)
            memory, disk = memory_mb(pids), disk_bytes(bench)
            growth = sum(_per_order_kb(last_memory, memory, len(parked) - last_n, 1024).values())
            disk_growth = sum(_per_order_kb(last_disk, disk, len(parked) - last_n, 1 / 1024).values())
            print(f"    scale: {len(parked)} parked after {time.monotonic() - started:.0f}s: memory "
                  f"{sum(memory.values()):.0f} MB (+{growth:.1f} KB per order since {last_n}), disk "
                  f"{sum(disk.values()) / 2**20:.0f} MB (+{disk_growth:.1f} KB per order); "
                  + ", ".join(f"{name} {_mb(mb)}" for name, mb in sorted(memory.items())), flush=True)
            last_memory, last_disk, last_n = memory, disk, len(parked)
        if time.monotonic() >= next_report:
            next_report += 30
            print(f"    parked {len(parked)}/{count} after {time.monotonic() - started:.0f}s"
                  + (f" ({len(ended)} ended instead)" if ended else ""), flush=True)
    await placing
    parked_s = time.monotonic() - started
    placed_cpu = sum(usage.cpu_since().values())
    print(f"parked {len(parked)}/{count} orders in {parked_s:.0f}s ({len(parked) / parked_s:.0f}/s), "
          f"{errors} errors, {len(ended)} ended instead, {placed_cpu * 1000 / max(len(parked), 1):.0f} cpu ms and "
          f"{usage.store_kb_since() / max(len(parked), 1):.1f} KB of store per parked saga", flush=True)

    # At rest: the actors that served the last orders leave memory after their idle timeout.
    at_rest = Usage.now(bench.state)
    await asyncio.sleep(max(rest_s, idle_s + 45 if idle_s else rest_s))
    idle = at_rest.cpu_since()
    memory, disk = memory_mb(pids), disk_bytes(bench)
    per_order = _per_order_kb(base_memory, memory, len(parked), 1024)
    print(f"    at rest with {len(parked)} parked: cpu {sum(idle.values()) / max(rest_s, 1):.2f} cores; memory "
          f"{sum(memory.values()):.0f} MB, {sum(per_order.values()):.1f} KB per parked order over all processes "
          f"(the empty stack: {sum(base_memory.values()):.0f} MB); disk "
          f"{sum(disk.values()) / 2**20:.0f} MB, "
          f"{(sum(disk.values()) - sum(base_disk.values())) / 1024 / max(len(parked), 1):.1f} KB per parked order",
          flush=True)
    print("    memory per process now (KB per parked order): " + ", ".join(
        f"{name} {_mb(memory[name])} ({per_order[name]:+.1f})" for name in sorted(memory)), flush=True)
    print("    disk now (KB per parked order): " + ", ".join(
        f"{name} {disk[name] / 2**20:.0f}MB ({(disk[name] - base_disk[name]) / 1024 / max(len(parked), 1):+.1f})"
        for name in sorted(disk)), flush=True)

    await queries(stub, metadata, customers[7], prefix)
    beside = await bench.step(SCENARIOS["no-approval"], "closed loop beside parked", None, 20)
    print_step(beside)
    if approve and parked:
        await bulk_approval(bench, stub, metadata, prefix, len(parked), ended, completed_at, pids, timeout_s)
    stop.set()
    await listener
    await channel.close()


async def _timed(call, repeat: int = 5):
    times, reply = [], None
    for _ in range(repeat):
        started = time.monotonic()
        reply = await call()
        times.append((time.monotonic() - started) * 1000)
    return statistics.median(times), reply


async def queries(stub, metadata, customer: str, prefix: str) -> None:
    """ListOrders at this size: first page, a filtered page, the next page."""
    async def list_orders(**fields):
        return await stub.ListOrders(pb.ListOrdersRequest(**fields), metadata=metadata, timeout=120)

    first_ms, first = await _timed(lambda: list_orders())
    print(f"    ListOrders first page: {first_ms:.0f} ms (median of 5), {len(first.orders)} orders of "
          f"{first.total_matching}, {first.ByteSize()} bytes", flush=True)
    filtered_ms, filtered = await _timed(lambda: list_orders(status="AWAITING_APPROVAL", customer_id=customer))
    print(f"    ListOrders filtered (AWAITING_APPROVAL, customer {customer}): {filtered_ms:.0f} ms, "
          f"{len(filtered.orders)} orders of {filtered.total_matching}", flush=True)
    next_ms, _ = await _timed(lambda: list_orders(page_token=first.next_page_token))
    print(f"    ListOrders next page (by token): {next_ms:.0f} ms", flush=True)
    text_ms, by_text = await _timed(lambda: list_orders(text=f"{prefix}777", page_size=10))
    print(f"    ListOrders by order id text: {text_ms:.0f} ms, {by_text.total_matching} matching", flush=True)


async def bulk_approval(bench: Bench, stub, metadata, prefix: str, count: int, ended: dict[str, str],
                        completed_at: list[float], pids: dict[str, int], timeout_s: float) -> None:
    """One bulk approval of every parked order, drained: how fast they complete, and at what cost."""
    request = pb.BulkActionRequest(action="approve", filter=pb.OrderFilter(status="AWAITING_APPROVAL", text=prefix),
                                   operator="bench", rate_per_s=1000, dry_run=True)
    preview = await stub.StartBulkAction(request, metadata=metadata, timeout=300)
    request.dry_run, request.confirm_count = False, preview.selected
    usage = Usage.now(bench.state)
    done_before = len(ended)
    started = time.monotonic()
    bulk = await stub.StartBulkAction(request, metadata=metadata, timeout=300)
    print(f"    bulk approval {bulk.bulk_id}: {bulk.selected} selected (dry run: {preview.selected})", flush=True)
    next_report, last_done, last_t = started + 60, done_before, started
    while len(ended) - done_before < bulk.selected and time.monotonic() - started < timeout_s:
        await asyncio.sleep(1)
        if time.monotonic() >= next_report:
            status = await stub.GetBulkAction(pb.GetBulkActionRequest(bulk_id=bulk.bulk_id, page_size=1),
                                              metadata=metadata, timeout=60)
            now = time.monotonic()
            print(f"    bulk approval after {now - started:.0f}s: {status.done} approved, "
                  f"{len(ended) - done_before} completed ({(len(ended) - last_done) / (now - last_t):.1f}/s over the "
                  f"last {now - last_t:.0f}s)", flush=True)
            next_report, last_done, last_t = next_report + 60, len(ended), now
    drained_s = time.monotonic() - started
    cpu = usage.cpu_since()
    completed = len(ended) - done_before
    top = sorted(cpu.items(), key=lambda item: -item[1])[:5]
    print(f"bulk approval of {bulk.selected} parked orders drained in {drained_s:.0f}s: {completed} ended "
          f"({completed / drained_s:.1f}/s), {sum(cpu.values()) * 1000 / max(completed, 1):.0f} cpu ms per order, "
          f"{sum(cpu.values()) / drained_s / CORES:.0%} of {CORES} cores; most cpu: "
          + ", ".join(f"{name} {seconds * 1000 / max(completed, 1):.0f} ms" for name, seconds in top), flush=True)
    memory = memory_mb(pids)
    print("    memory after the drain: " + ", ".join(f"{name} {_mb(mb)}" for name, mb in sorted(memory.items())),
          flush=True)
