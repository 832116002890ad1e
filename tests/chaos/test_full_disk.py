"""A full disk under a state store (ordersaga/stack/fulldisk.py: a small tmpfs under the SQLite
file, or a PostgreSQL tablespace on one holding the store's table): the store works on it, then
the disk fills while orders are placed and under way, then the space comes back.

While it is full: writes fail with an error that says so (a log line names the full disk), and
nothing is half-written: a placement the store refused is either absent or ends like any order
(it must not linger, stored but never started), every order that started ends once the space is
back (NEEDS_ATTENTION ones by a retry), the invariants hold, and the SQLite file passes its
integrity check. After it: new orders complete again. `make test`: order-service's store (the
orders, the sagas' histories, the reminders) on the embedded profile and payment-service's on
the production one; `make soak`: every store on both."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing

import pytest

from ordersaga.stack.fulldisk import SmallDisk
from tests.chaos.conftest import on_both_profiles
from tests.helpers.verdict import LogWindow, Verdict, patient

SMALL, LARGE = 1_000, 150_000
STORES = ["order-service", "inventory-service", "payment-service", "shipping-service"]
QUICK = {"embedded": ["order-service"], "production": ["payment-service"]}
FULL_DISK = r"(disk is full|no space left|SQLSTATE 53100|could not extend)"
TECHNICAL = {"FAILED INVENTORY_UNAVAILABLE", "FAILED PAYMENT_UNAVAILABLE", "FAILED SHIPPING_FAILED"}
FULL_FOR_S = 20


@pytest.mark.timeout(2400)
def test_a_full_disk_under_a_store(fault_stacks, tally, measured, soak):
    def stores(stack, client) -> list[str]:
        chosen = STORES if soak else QUICK[stack.state().profile]
        return [v for store in chosen for v in full_disk(stack, client, tally, measured, store)]
    on_both_profiles(fault_stacks, stores)


def full_disk(fault_stack, fault_client, tally, measured, store: str) -> list[str]:
    profile = fault_stack.state().profile
    verdict = Verdict(fault_stack, fault_client, "full disk", tag=f"disk-{profile[:4]}-{store.split('-')[0][:3]}")
    started = time.monotonic()
    disk = SmallDisk(fault_stack, store).install()
    try:
        before = [verdict.order(f"before-{n}", [(1, SMALL)], note="placed before the disk filled",
                                allowed={"COMPLETED"}) for n in range(2)]
        for order in before:
            verdict.place(order)
        for order in before:
            patient(lambda order=order: fault_client.wait_for_status(order.order_id, "COMPLETED", timeout=60))
        waiting = verdict.order("approved", [(1, LARGE)], note="approved while the disk was full",
                                allowed={"COMPLETED"} | TECHNICAL)
        verdict.place(waiting)
        patient(lambda: fault_client.wait_for_status(waiting.order_id, "AWAITING_APPROVAL", timeout=60))

        window = LogWindow(fault_stack.run_dir)
        filled = disk.fill()
        verdict.fault(f"{store}'s disk full ({filled // 2**20} MiB of ballast) for {FULL_FOR_S}s")
        during = [verdict.order(f"during-{n}", [(1, SMALL)], note="placed while the disk was full",
                                allowed={"COMPLETED"} | TECHNICAL) for n in range(3)]
        short = verdict.order("short", [(1, SMALL), (1, SMALL)], stock=1, note="a line short while the disk was full",
                              allowed={"FAILED OUT_OF_STOCK"} | TECHNICAL)
        fault_client.set_stock(short.items[1][0], 0)
        short.stock[short.items[1][0]] = 0
        refused = []
        for order in during + [short]:
            try:  # once: a store that refuses the order refuses it at once, with an error
                fault_client.place(order.order_id, order.customer, order.items)
            except Exception as error:  # noqa: BLE001 - allowed while full, if nothing is left behind
                order.refused = True
                refused.append(f"{order.order_id}: {str(error)[:160]}")
        try:
            fault_client.approve(waiting.order_id, approver="full-disk")
        except Exception as error:  # noqa: BLE001
            refused.append(f"approval of {waiting.order_id}: {str(error)[:160]}")
        time.sleep(FULL_FOR_S)
        said = window.lines(FULL_DISK)
        disk.free()
        verdict.named[f"{store} full"] = bool(said)
        print(f"{store}'s disk full: {len(said)} log lines say so" + (f", e.g. {said[0]}" if said else "")
              + f"; refused while full: {refused or 'nothing'}")
        if refused and any(r.startswith("approval") for r in refused):
            patient(lambda: fault_client.approve(waiting.order_id, approver="full-disk-again"))

        after = [verdict.order(f"after-{n}", [(1, SMALL)], note="placed once the space was back",
                               allowed={"COMPLETED"}) for n in range(2)]
        for order in after:
            verdict.place(order)
        violations = verdict.check(bound_s=300)
    finally:
        disk.remove()
    if not said:
        violations.append(f"no log line says {store}'s disk is full (looked for {FULL_DISK})")
    if profile == "embedded":
        with closing(sqlite3.connect(f"file:{fault_stack.run_dir / 'data' / f'{store}.db'}?mode=ro", uri=True)) as db:
            integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        if integrity != "ok":
            violations.append(f"{store}.db fails its integrity check: {integrity}")
    tally.add(f"full disk ({profile})", verdict, violations)
    measured(f"full disk under {store} on {profile}: {len(verdict.orders)} orders, {len(refused)} refused while full, "
             f"{len(violations)} violations, in {time.monotonic() - started:.0f}s")
    return violations

