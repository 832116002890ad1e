"""A rolling update with sagas parked at approval: a new image tag rolled out with `helm upgrade`
(every Deployment replaces its pods one by one), while orders wait for approval and others are
placed during the rollout. The parked sagas finish after the update, on the new pods."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

from ordersaga.cluster import install
from tests.helpers.invariants import check_invariants
from tests.k8s.conftest import NAMESPACE, ORDER_REPLICAS, TEST_VALUES, pods_of, wait_ready
from tests.k8s.paths import LARGE, SMALL, steps
from tests.production.scenario import Placer

NEW_TAG = f"{install.APP_TAG}-rollout-{time.strftime('%H%M%S')}"  # new on every run: a real rollout


class Recording:
    """The client as the placer sees it, with what each refused placement said (for the summary)."""

    def __init__(self, saga):
        self.saga, self.refusals = saga, []

    def place(self, *args):
        try:
            return self.saga.place(*args)
        except Exception as error:
            self.refusals.append(f"{type(error).__name__}: {str(error).strip()[:160]}")
            raise


@pytest.mark.timeout(1200)
def test_parked_sagas_finish_after_a_rolling_update(installed, saga, kubectl, ids, measured):
    node, state = installed.node, installed.state
    sku, customer = ids("sku"), ids("c")
    saga.set_stock(sku, 100)
    parked = [ids("o") for _ in range(4)]
    for order_id in parked:
        saga.place(order_id, customer, [(sku, 1, LARGE)])
    for order_id in parked:
        saga.wait_for_status(order_id, "AWAITING_APPROVAL", timeout=120)
    old_pods = set(pods_of(kubectl, "order-service"))

    # The same image under a new tag, as a release would bring; the chart's image.tag rolls it out.
    image = f"{install.APP_REPOSITORY}:{install.APP_TAG}"
    tagged = subprocess.run([*node.ctr(state), "images", "tag", "--force", image,
                             f"{install.APP_REPOSITORY}:{NEW_TAG}"], capture_output=True, text=True)
    assert tagged.returncode == 0, tagged.stderr
    during = [(ids("o"), customer, [(sku, 1, SMALL)]) for _ in range(6)]
    recording = Recording(saga)
    placer = Placer(recording, during, every_s=5, patience_s=300)
    started = time.monotonic()
    upgrade = threading.Thread(target=installed.install_chart, kwargs={
        "tag": NEW_TAG, "extra": ("--values", str(TEST_VALUES))})
    upgrade.start()
    placer.start()
    upgrade.join()
    rolled = time.monotonic() - started
    placer.join(timeout=600)
    assert not placer.errors, placer.errors
    wait_ready(kubectl, "order-service", ORDER_REPLICAS)
    new_pods = set(pods_of(kubectl, "order-service"))
    assert not new_pods & old_pods, (old_pods, new_pods)
    images = {kubectl("-n", NAMESPACE, "get", "pod", pod, "-o",
                      "jsonpath={.spec.containers[?(@.name=='app')].image}").strip() for pod in new_pods}
    assert images == {f"{install.APP_REPOSITORY}:{NEW_TAG}"}, images  # (old pods may still be draining)

    approved_at = time.monotonic()
    for order_id in parked:  # still waiting: the rollout did not lose them
        assert saga.wait_for_status(order_id, "AWAITING_APPROVAL", timeout=120)["status"] == "AWAITING_APPROVAL"
        saga.approve(order_id, approver="after-rollout")
    final = check_invariants(saga, {sku: 100}, parked + [o for o, _, _ in during], bound_s=300)
    failed = {k: (o["status"], o["reason"], steps(o)) for k, o in final.items() if o["status"] != "COMPLETED"}
    assert not failed, failed
    for order_id in parked:
        assert ("approval", "APPROVED") in steps(final[order_id])
    measured(f"kubernetes rolling update: helm upgrade to {NEW_TAG} took {rolled:.0f}s; {len(parked)} sagas parked "
             f"at approval through it and {len(during)} placed during it all completed "
             f"({time.monotonic() - approved_at:.1f}s after the approvals); {placer.refusals} placements retried"
             + (f" ({'; '.join(sorted(set(recording.refusals)))})" if recording.refusals else ""))
