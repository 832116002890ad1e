"""A saga version for the upgrade test only: the latest (v2) and one more step, a timeline note
written by an update_order activity of its own after the saga's last step. Its histories differ
from v2's from that step on, so a v2 saga replayed through it would break: versioning must keep them apart.

order-service loads it when started with
ORDERSAGA_EXTRA_SAGA_VERSION=tests.e2e.upgrade_saga:order_saga_next_test:next-test.
"""

from __future__ import annotations

import dapr.ext.workflow as wf

from order_service.messages import OrderUpdate, SagaInput, StepRecord
from order_service.sagas.v2 import BOOKKEEPING_RETRY, order_saga_v2

VERSION = "next-test"
EXTRA_SAGA_VERSION = f"{__name__}:order_saga_next_test:{VERSION}"
EXTRA_STEP = ("upgrade-test", "DONE")


def order_saga_next_test(ctx: wf.DaprWorkflowContext, saga_input: SagaInput):
    status = yield from order_saga_v2(ctx, saga_input)
    order_id = SagaInput.model_validate(saga_input).order.order_id
    step, outcome = EXTRA_STEP
    note = StepRecord(order_id=order_id, step=step, outcome=outcome, key=f"{step}:{outcome}")
    yield ctx.call_activity("update_order", input=OrderUpdate(order_id=order_id, records=[note]),
                            retry_policy=BOOKKEEPING_RETRY)
    return status
