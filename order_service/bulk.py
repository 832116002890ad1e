"""Bulk actions: retry, close, cancel, approve or reject every order a filter selects.

The API side (StartBulkAction, GetBulkAction, ListBulkActions) and the activities of the bulk
workflow (order_service/sagas/bulk_v1.py). A dry run selects and answers, and starts nothing. A
run is a workflow of its own (`bulk-<id>`): durable, resumed after a crash, paced to a rate and
held back while the replica's sagas at work are at the admission limit (approvals and retries
start sagas: the bulk action never queues more work than the stack takes). Each order's actor
is the judge, as for a single call; what each order did is stored beside the action, in chunks
(`bulk|<id>|report|NNNN` in order-service's store), and paged by GetBulkAction.

Selecting needs a count the caller agreed to (`confirm_count`, the CLI's `--yes` after its dry
run, the console's typed number): a run never touches more orders than someone saw.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import asdict
from datetime import datetime, timezone

import grpc
from dapr.ext.workflow import WorkflowActivityContext

from order_service import admission, index, queries
from order_service import orders_pb2 as pb
from order_service.domain import CANCELLABLE, OrderStatus
from order_service.messages import BulkChunk, BulkCounts, BulkHead, BulkInput
from order_service.sidecar import ActorCallError, sidecar

log = logging.getLogger("order_service.bulk")
BULK_WORKFLOW = "ordersaga_bulk_action"
STORE = index.STORE
ACTOR_TYPE = "OrderActor"
RECENT_KEY = "bulk|recent"
RECENT_KEPT = 50
DEFAULT_RATE = 20.0
MAX_RATE = 1000.0
SHOWN_IN_DRY_RUN = 20
CONCURRENT_CALLS = 8  # actor calls of one bulk action in flight at once
SAVE_EVERY = 25  # report entries between two saves of a chunk's report (a crash repeats at most these)

# The statuses each action applies to; what else the filter matches is left alone.
APPLIES_TO = {
    "retry": frozenset({OrderStatus.NEEDS_ATTENTION.value}),
    "close": frozenset({OrderStatus.NEEDS_ATTENTION.value}),
    "cancel": frozenset(s.value for s in CANCELLABLE),
    "approve": frozenset({OrderStatus.AWAITING_APPROVAL.value}),
    "reject": frozenset({OrderStatus.AWAITING_APPROVAL.value}),
}


def ids_key(bulk_id: str, number: int) -> str:
    return f"bulk|{bulk_id}|ids|{number:04d}"


def report_key(bulk_id: str, number: int) -> str:
    return f"bulk|{bulk_id}|report|{number:04d}"


def head_key(bulk_id: str) -> str:
    return f"bulk|{bulk_id}|head"


# ---- selection (pure) ------------------------------------------------------------------------

def selection(rows: dict[str, queries.IndexRow], action: str, wanted: queries.ListFilter, now: datetime,
              rules: queries.StuckRules) -> tuple[list[tuple[str, queries.IndexRow]], int]:
    """The orders the action would touch, oldest first, and how many more the filter matches
    that it does not apply to (their status)."""
    applies = APPLIES_TO[action]
    matched = [(row.placed, order_id) for order_id, row in rows.items()
               if queries.matches(order_id, row, wanted, now, rules)]
    chosen = sorted(key for key in matched if rows[key[1]].status in applies)
    return [(order_id, rows[order_id]) for _, order_id in chosen], len(matched) - len(chosen)


# ---- the API ---------------------------------------------------------------------------------

def start(api, request: pb.BulkActionRequest, context) -> pb.BulkAction:
    from order_service.api import filter_of  # the API's own conversion of the filter fields

    action = request.action.strip().lower()
    if action not in APPLIES_TO:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                      f"action: {request.action[:64]!r} is not one of {', '.join(APPLIES_TO)}")
    if action == "close" and not request.note.strip():
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "note: say what was done by hand")
    rate = request.rate_per_s or DEFAULT_RATE
    if not 0 < rate <= MAX_RATE:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"rate_per_s: between 0 and {MAX_RATE:g}")
    wanted = api._filter(context, filter_of(request.filter))
    now = datetime.now(timezone.utc)
    chosen, left_alone = selection(api._rows(context), action, wanted, now, api._stuck)
    answer = pb.BulkAction(action=action, selected=len(chosen), left_alone=left_alone, filter=wanted.describe(),
                           rate_per_s=rate, operator=request.operator[:100])
    if request.dry_run:
        answer.state = "DRY_RUN"
        answer.results.extend(pb.BulkOrderResult(order_id=order_id, status=row.status, outcome="WOULD_CHANGE")
                              for order_id, row in chosen[:SHOWN_IN_DRY_RUN])
        return answer
    if not chosen:
        context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                      f"no order matches ({wanted.describe()}) that {action} applies to"
                      + (f" ({left_alone} match, in other statuses)" if left_alone else "") + ": nothing to do")
    if request.confirm_count < len(chosen):
        context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                      f"{len(chosen)} orders are selected, more than the {request.confirm_count} confirmed "
                      "(confirm_count): look at them with a dry run, then confirm that number")
    job = BulkInput(bulk_id=f"bulk-{uuid.uuid4().hex[:12]}", action=action, filter=asdict(wanted),
                    operator=request.operator[:100] or "unknown", note=request.note[:500], rate_per_s=rate,
                    requested_at=now.isoformat(timespec="milliseconds"))
    try:
        api._sidecar.start_workflow_sync(BULK_WORKFLOW, job.model_dump(mode="json"), job.bulk_id)
    except grpc.RpcError as error:
        context.abort(grpc.StatusCode.UNAVAILABLE, f"the bulk action could not be started: {error.details()}")
    _remember(api._sidecar, job.bulk_id)
    log.info("bulk=%s action=%s selected=%d filter=%s by=%s rate=%g", job.bulk_id, action, len(chosen),
             wanted.describe(), job.operator, rate)
    answer.bulk_id, answer.state, answer.started_at = job.bulk_id, "RUNNING", job.requested_at
    return answer


def get(api, request: pb.GetBulkActionRequest, context, with_results: bool = True) -> pb.BulkAction:
    bulk_id = request.bulk_id.strip()
    if not bulk_id.startswith("bulk-") or len(bulk_id) > 64:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bulk_id: a bulk action's id (bulk-...)")
    try:
        found = api._sidecar.workflow_run_sync(bulk_id)
    except grpc.RpcError as error:
        context.abort(grpc.StatusCode.UNAVAILABLE, f"the bulk action could not be read: {error.details()}")
    if found is None:
        context.abort(grpc.StatusCode.NOT_FOUND, f"no bulk action {bulk_id}")
    run, raw_input = found
    job = BulkInput.model_validate_json(raw_input)
    progress = json.loads(run.custom_status) if run.custom_status else {}
    if run.status == "COMPLETED" and run.output:
        progress.update(json.loads(run.output))
    answer = pb.BulkAction(bulk_id=bulk_id, action=job.action, state=run.status, operator=job.operator,
                           selected=progress.get("selected", 0), left_alone=progress.get("left_alone", 0),
                           done=progress.get("done", 0), changed=progress.get("changed", 0),
                           skipped=progress.get("skipped", 0), failed=progress.get("failed", 0),
                           started_at=job.requested_at, rate_per_s=job.rate_per_s,
                           filter=queries.ListFilter(**job.filter).describe())
    if with_results:
        answer.results.extend(_report_page(api, job, progress.get("chunks", 0), request, context, answer))
    return answer


def list_recent(api, context) -> pb.ListBulkActionsResponse:
    try:
        data, _ = api._sidecar.get_state_sync(STORE, RECENT_KEY)
    except grpc.RpcError as error:
        context.abort(grpc.StatusCode.UNAVAILABLE, f"the bulk actions could not be read: {error.details()}")
    answers = []
    for bulk_id in json.loads(data) if data else []:
        try:
            answers.append(get(api, pb.GetBulkActionRequest(bulk_id=bulk_id), _Quiet(), with_results=False))
        except _Skip:
            continue  # purged by the retention policy, or unreadable now
    return pb.ListBulkActionsResponse(bulk_actions=answers)


def _report_page(api, job: BulkInput, chunks: int, request, context, answer: pb.BulkAction):
    """A page of the report, from the token's chunk and offset on; a token when the page is
    full (the rest may not be reported yet: ask again later)."""
    size = request.page_size or queries.DEFAULT_PAGE_SIZE
    if not 0 < size <= queries.MAX_PAGE_SIZE:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"page_size: at most {queries.MAX_PAGE_SIZE}")
    chunk, offset = 0, 0
    if request.page_token:
        try:
            chunk, offset = (int(part) for part in request.page_token.split(".", 1))
        except ValueError:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "page_token: not a page token of this bulk action")
    results = []
    while chunk < chunks and len(results) < size:
        data, _ = api._sidecar.get_state_sync(STORE, report_key(job.bulk_id, chunk))
        entries = json.loads(data) if data else []
        taken = entries[offset:offset + size - len(results)]
        results += [pb.BulkOrderResult(order_id=e[0], status=e[1], outcome=e[2], detail=e[3]) for e in taken]
        offset += len(taken)
        if offset < job.chunk_size and len(results) < size:
            break  # the end of what is reported so far
        if offset >= job.chunk_size:
            chunk, offset = chunk + 1, 0
    if len(results) == size and chunk < chunks:
        answer.next_page_token = f"{chunk}.{offset}"
    return results


class _Skip(Exception):
    pass


class _Quiet:
    def abort(self, code, message):
        raise _Skip(message)


def _remember(side, bulk_id: str) -> None:
    """Add the action to the recent ones (best effort: the id is the caller's answer anyway)."""
    for _ in range(20):
        try:
            data, etag = side.get_state_sync(STORE, RECENT_KEY)
            recent = [bulk_id] + [b for b in (json.loads(data) if data else []) if b != bulk_id]
            side.save_state_if_sync(STORE, RECENT_KEY, json.dumps(recent[:RECENT_KEPT]).encode(), etag)
            return
        except grpc.RpcError as error:
            log.info("bulk=%s not yet in the recent list: %s", bulk_id, error.details())


# ---- the activities --------------------------------------------------------------------------------

async def bulk_select(ctx: WorkflowActivityContext, job: BulkInput) -> BulkHead:
    """Take the selection once: a repeat (the activity runs at least once) finds it stored."""
    job = BulkInput.model_validate(job)
    stored, _ = await sidecar().get_state(STORE, head_key(job.bulk_id))
    if stored:
        return BulkHead.model_validate_json(stored)
    rows = await asyncio.to_thread(index.read_all, sidecar())
    wanted = queries.ListFilter(**job.filter)
    chosen, left_alone = selection(rows, job.action, wanted, datetime.now(timezone.utc), queries.StuckRules())
    chunks = [chosen[n:n + job.chunk_size] for n in range(0, len(chosen), job.chunk_size)]
    for number, chunk in enumerate(chunks):
        await sidecar().save_state(STORE, ids_key(job.bulk_id, number),
                                   json.dumps([[order_id, row.status] for order_id, row in chunk]).encode())
    head = BulkHead(selected=len(chosen), chunks=len(chunks), left_alone=left_alone)
    await sidecar().save_state(STORE, head_key(job.bulk_id), head.model_dump_json().encode())
    log.info("bulk=%s step=select selected=%d chunks=%d left_alone=%d", job.bulk_id, head.selected, head.chunks,
             left_alone)
    return head


async def bulk_apply(ctx: WorkflowActivityContext, chunk: BulkChunk) -> BulkCounts:
    """Act on one chunk's orders, paced, and store what each did. A run cut short is run again:
    the orders already reported are not asked again; the few since the last save are (each
    action is idempotent at the actor, so they answer as repeats)."""
    chunk = BulkChunk.model_validate(chunk)
    job, bulk_id = chunk.job, chunk.job.bulk_id
    data, _ = await sidecar().get_state(STORE, ids_key(bulk_id, chunk.number))
    orders = json.loads(data) if data else []
    data, _ = await sidecar().get_state(STORE, report_key(bulk_id, chunk.number))
    report: list[list[str]] = json.loads(data) if data else []
    done = {entry[0] for entry in report}
    pace = Pace(job.rate_per_s)
    calls = asyncio.Semaphore(CONCURRENT_CALLS)
    unsaved = 0

    async def act(order_id: str, status: str) -> None:
        nonlocal unsaved
        async with calls:
            outcome, detail = await apply_one(job, order_id)
        report.append([order_id, status, outcome, detail[:200]])
        unsaved += 1
        if unsaved >= SAVE_EVERY:
            unsaved = 0
            await sidecar().save_state(STORE, report_key(bulk_id, chunk.number), json.dumps(report).encode())

    tasks = []
    for order_id, status in orders:
        if order_id in done:
            continue
        await pace.wait()
        await wait_for_room(job.action)
        tasks.append(asyncio.create_task(act(order_id, status)))
    await asyncio.gather(*tasks)
    await sidecar().save_state(STORE, report_key(bulk_id, chunk.number), json.dumps(report).encode())
    counts = BulkCounts(done=len(report), changed=sum(e[2] == "CHANGED" for e in report),
                        skipped=sum(e[2] == "SKIPPED" for e in report), failed=sum(e[2] == "FAILED" for e in report))
    log.info("bulk=%s step=chunk number=%d done=%d changed=%d skipped=%d failed=%d", bulk_id, chunk.number,
             counts.done, counts.changed, counts.skipped, counts.failed)
    return counts


async def apply_one(job: BulkInput, order_id: str) -> tuple[str, str]:
    """What the action did to one order: CHANGED, SKIPPED (its actor said it does not apply, or
    it was done already) or FAILED, with why."""
    method, payload = {
        "retry": ("retry", {"by": job.operator}),
        "close": ("close", {"by": job.operator, "note": job.note}),
        "cancel": ("cancel", {"reason": job.note or f"bulk cancel {job.bulk_id} by {job.operator}"}),
        "approve": ("decide", {"order_id": order_id, "decision": "approve", "approver": job.operator,
                               "reason": job.note}),
        "reject": ("decide", {"order_id": order_id, "decision": "reject", "approver": job.operator,
                              "reason": job.note}),
    }[job.action]
    try:
        answer = await sidecar().call_actor_async(ACTOR_TYPE, order_id, method, payload)
    except ActorCallError as error:
        outcome = "SKIPPED" if error.code in ("FAILED_PRECONDITION", "NOT_FOUND") else "FAILED"
        return outcome, f"{error.code}: {error.message}"
    if method == "decide" and (answer or {}).get("outcome") == "duplicate":
        return "SKIPPED", f"already decided ({answer.get('decision')})"
    status = (answer or {}).get("status", "")
    return "CHANGED", f"now {status}" if status else ""


class Pace:
    """At most `rate` starts per second, evenly spaced."""

    def __init__(self, rate: float, clock=time.monotonic, sleep=asyncio.sleep):
        self.interval, self.clock, self.sleep = 1.0 / rate, clock, sleep
        self.next_at = clock()

    async def wait(self) -> None:
        now = self.clock()
        if self.next_at > now:
            await self.sleep(self.next_at - now)
        self.next_at = max(self.next_at, now) + self.interval


async def wait_for_room(action: str) -> None:
    """Approvals and retries start sagas: wait while this replica's sagas at work are at the
    admission limit, so a bulk action never queues more than the stack takes."""
    if action not in ("approve", "retry"):
        return
    gate = admission.current()
    while gate.limit and gate.at_work() >= gate.limit:
        await asyncio.sleep(0.1)


ACTIVITIES = {"bulk_select": bulk_select, "bulk_apply": bulk_apply}
