"""A bulk action, version 1: retry, close, cancel, approve or reject every order a filter
selected, at a rate, durably. Replayed code, like the sagas (docs/changing-the-saga.md).

1. Select: one activity takes the orders the filter selects now (from the orders index) and
   stores them in chunks beside the action; a repeat of it finds them stored, so the selection
   never changes once taken.
2. Act, chunk after chunk: one activity per chunk calls each order's actor (paced to the rate;
   each action is idempotent at the actor, so a chunk cut short by a crash is run again) and
   stores what each order did; the workflow's custom status says how far it got.
Frozen: change it only behind a patch, or as a new version.
"""

from __future__ import annotations

import json
from datetime import timedelta

import dapr.ext.workflow as wf

from order_service.messages import BulkChunk, BulkCounts, BulkHead, BulkInput

BULK_RETRY = wf.RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=20,
                            backoff_coefficient=2.0, max_retry_interval=timedelta(seconds=60))


def bulk_action(ctx: wf.DaprWorkflowContext, bulk_input: BulkInput):
    job = BulkInput.model_validate(bulk_input)
    head = BulkHead.model_validate((yield ctx.call_activity("bulk_select", input=job, retry_policy=BULK_RETRY)))
    totals = BulkCounts()
    ctx.set_custom_status(_progress(head, totals, 0))
    for number in range(head.chunks):
        counts = yield ctx.call_activity("bulk_apply", input=BulkChunk(job=job, number=number),
                                         retry_policy=BULK_RETRY)
        totals = totals.plus(BulkCounts.model_validate(counts))
        ctx.set_custom_status(_progress(head, totals, number + 1))
    return totals.model_dump()


def _progress(head: BulkHead, totals: BulkCounts, chunks_done: int) -> str:
    return json.dumps({**head.model_dump(), **totals.model_dump(), "chunks_done": chunks_done})
