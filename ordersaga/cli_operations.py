"""The CLI's verbs for many orders at once: `bulk` (retry, close, cancel, approve or reject every
order a filter selects; a bulk action's status; the latest ones) and `deadletters` (list what
order-service refused, send chosen letters back).

Both act only when told twice: `--dry-run` shows what would be touched, `--yes` acts, and one
of them is always required; a bulk run confirms the number of orders its own dry run counted
(the server refuses if more match by then).
"""

from __future__ import annotations

import json
import time

from order_service import orders_pb2 as pb
from ordersaga import cli_orders
from ordersaga import deadletters as letters_module
from ordersaga.cli_orders import UsageError
from ordersaga.client import SagaClient

BULK_ACTIONS = ("retry", "close", "cancel", "approve", "reject")
SHOWN = 20
_ENDED = {"COMPLETED", "FAILED", "TERMINATED"}


def add_parsers(sub, with_client, operator: str) -> None:
    bulk = sub.add_parser("bulk", help="act on every order a filter selects: bulk retry|close|cancel|approve|reject "
                                       "[filters] (--dry-run | --yes); bulk status ID; bulk list")
    bulk.add_argument("action", choices=BULK_ACTIONS + ("status", "list"))
    bulk.add_argument("bulk_id", nargs="?", metavar="ID", help="with `status`: the bulk action")
    cli_orders.add_filters(bulk)
    bulk.add_argument("--note", default="", help="close: what was done by hand (required); cancel, reject: why")
    bulk.add_argument("--by", default=operator, help="who acts (on each order's timeline; default: $USER)")
    bulk.add_argument("--rate", type=float, default=0, metavar="N", help="orders per second at most (default 20)")
    bulk.add_argument("--dry-run", action="store_true", help="show what would be touched; change nothing")
    bulk.add_argument("--yes", action="store_true", help="act on every order the dry run counts")
    bulk.add_argument("--detach", action="store_true", help="start it and return (follow with `bulk status ID`)")
    bulk.add_argument("--json", action="store_true")
    bulk.set_defaults(func=with_client(bulk_command))

    dead = sub.add_parser("deadletters", help="dead-lettered approvals and order requests: deadletters list "
                                              "[filters] | deadletters redrive (--id ID ... | filters --all) "
                                              "(--dry-run | --yes)")
    dead.add_argument("action", choices=["list", "redrive"])
    dead.add_argument("--id", action="append", default=[], metavar="ID", help="a letter's id (from `list`)")
    dead.add_argument("--kind", choices=sorted(letters_module.KINDS), default="",
                      help="approvals or order requests only")
    dead.add_argument("--reason", default="", help="letters whose reason contains this")
    dead.add_argument("--order", default="", metavar="ORDER_ID", help="letters about this order")
    dead.add_argument("--all", action="store_true", help="redrive every letter the filters select")
    dead.add_argument("--dry-run", action="store_true")
    dead.add_argument("--yes", action="store_true")
    dead.add_argument("--json", action="store_true")
    dead.set_defaults(func=with_client(deadletters_command))


# ---- bulk -----------------------------------------------------------------------------------------

def bulk_command(client: SagaClient, args) -> int:
    api = client.orders()
    if args.action == "list":
        return _print_recent(api.ListBulkActions(pb.ListBulkActionsRequest(), timeout=60), args.json)
    if args.action == "status":
        if not args.bulk_id:
            raise UsageError("bulk status needs the bulk action's ID")
        return _print_status(_report(api, args.bulk_id), args.json)
    if args.bulk_id:
        raise UsageError(f"bulk {args.action} takes filters, not an ID")
    if args.dry_run == args.yes:
        raise UsageError("say --dry-run to see what it would touch, or --yes to act on it")
    if args.action == "close" and not args.note.strip():
        raise UsageError("bulk close needs --note: what was done by hand")
    request = pb.BulkActionRequest(action=args.action, filter=order_filter(args), operator=args.by, note=args.note,
                                   rate_per_s=args.rate, dry_run=True)
    preview = api.StartBulkAction(request, timeout=120)
    if not preview.selected:
        alone = f" ({preview.left_alone} match in statuses it does not apply to)" if preview.left_alone else ""
        print(f"No orders match ({preview.filter}) that {args.action} applies to{alone}: nothing to do.")
        return 1 if args.yes else 0
    if args.dry_run:
        return _print_preview(preview, args)
    request.dry_run, request.confirm_count = False, preview.selected
    started = api.StartBulkAction(request, timeout=120)
    if args.json and args.detach:
        print(json.dumps(bulk_json(started)))
        return 0
    print(f"Bulk {args.action} {started.bulk_id} started on {started.selected} orders at up to "
          f"{started.rate_per_s:g}/s (follow it with `ordersaga bulk status {started.bulk_id}`).", flush=True)
    if args.detach:
        return 0
    return _follow(api, started.bulk_id, args.json)


def order_filter(args) -> pb.OrderFilter:
    return pb.OrderFilter(status=args.status or "", customer_id=args.customer or "", reason=args.reason or "",
                          placed_after=args.placed_after or "", placed_before=args.placed_before or "",
                          saga_version=args.saga_version or "", in_status_for_s=args.in_status_for or 0,
                          stuck=args.stuck)


def _print_preview(preview: pb.BulkAction, args) -> int:
    if args.json:
        print(json.dumps(bulk_json(preview)))
        return 0
    alone = f"; {preview.left_alone} more match in other statuses and are left alone" if preview.left_alone else ""
    print(f"{preview.selected} orders would be {_done(args.action)} ({preview.filter}){alone}:")
    for result in preview.results:
        print(f"  {result.order_id:<40} {result.status}")
    if preview.selected > len(preview.results):
        print(f"  ... and {preview.selected - len(preview.results)} more")
    print(f"Run it again with --yes to {args.action} them.")
    return 0


def _follow(api, bulk_id: str, as_json: bool) -> int:
    last = None
    while True:
        status = api.GetBulkAction(pb.GetBulkActionRequest(bulk_id=bulk_id, page_size=1), timeout=60)
        seen = (status.done, status.state)
        if seen != last and not as_json:
            print(f"  {status.done}/{status.selected} done: {status.changed} changed, {status.skipped} skipped, "
                  f"{status.failed} failed ({status.state})", flush=True)
        last = seen
        if status.state in _ENDED:
            break
        time.sleep(2)
    return _print_status(_report(api, bulk_id), as_json)


def _report(api, bulk_id: str) -> tuple[pb.BulkAction, list[pb.BulkOrderResult]]:
    first = api.GetBulkAction(pb.GetBulkActionRequest(bulk_id=bulk_id, page_size=1000), timeout=60)
    results, token = list(first.results), first.next_page_token
    while token:
        page = api.GetBulkAction(pb.GetBulkActionRequest(bulk_id=bulk_id, page_size=1000, page_token=token),
                                 timeout=60)
        results += page.results
        token = page.next_page_token
    return first, results


def _print_status(report, as_json: bool) -> int:
    status, results = report
    if as_json:
        print(json.dumps({**bulk_json(status), "results": [_result_json(r) for r in results]}, indent=2))
        return 0 if not status.failed else 1
    print(f"Bulk {status.action} {status.bulk_id} ({status.filter}) by {status.operator}: {status.state}, "
          f"{status.done}/{status.selected} done: {status.changed} changed, {status.skipped} skipped, "
          f"{status.failed} failed")
    notable = [r for r in results if r.outcome != "CHANGED"]
    for result in notable[:SHOWN]:
        print(f"  {result.order_id:<40} {result.outcome:<8} {result.detail}")
    if len(notable) > SHOWN:
        print(f"  ... and {len(notable) - SHOWN} more not changed (`--json` lists every order)")
    return 0 if not status.failed else 1


def _print_recent(reply: pb.ListBulkActionsResponse, as_json: bool) -> int:
    if as_json:
        print(json.dumps([bulk_json(b) for b in reply.bulk_actions], indent=2))
        return 0
    if not reply.bulk_actions:
        print("No bulk actions.")
    for b in reply.bulk_actions:
        print(f"{b.bulk_id:<20} {b.action:<8} {b.state:<10} {b.done:>7}/{b.selected:<7} {b.started_at}  {b.filter}")
    return 0


def bulk_json(b: pb.BulkAction) -> dict:
    return {"bulk_id": b.bulk_id, "action": b.action, "state": b.state, "selected": b.selected,
            "left_alone": b.left_alone, "done": b.done, "changed": b.changed, "skipped": b.skipped,
            "failed": b.failed, "filter": b.filter, "rate_per_s": b.rate_per_s, "operator": b.operator,
            "started_at": b.started_at,
            **({"would_touch": [_result_json(r) for r in b.results]} if b.state == "DRY_RUN" else {})}


def _result_json(r: pb.BulkOrderResult) -> dict:
    return {"order_id": r.order_id, "status": r.status, "outcome": r.outcome, "detail": r.detail}


def _done(action: str) -> str:
    return {"retry": "retried", "close": "closed", "cancel": "cancelled", "approve": "approved",
            "reject": "rejected"}[action]


# ---- dead letters -----------------------------------------------------------------------------------

def deadletters_command(client: SagaClient, args) -> int:
    from ordersaga.eventfeed import feed_for  # the broker clients: only when letters are asked for

    kinds = (args.kind,) if args.kind else tuple(letters_module.KINDS)
    everything = letters_module.read(feed_for(client.state), kinds)
    chosen = letters_module.select(everything, ids=tuple(args.id), reason=args.reason, order_id=args.order)
    if args.action == "list":
        return _print_letters(chosen, args.json, _letters_filter(args))
    if not args.id and not args.all:
        raise UsageError("name the letters to send back with --id, or select them with filters and --all")
    if args.dry_run == args.yes:
        raise UsageError("say --dry-run to see what would be sent back, or --yes to send it")
    missing = sorted(set(args.id) - {letter.id for letter in chosen})
    if missing:
        raise UsageError(f"no such dead letter: {', '.join(missing[:5])} (see `ordersaga deadletters list`)")
    if not chosen:
        print("No dead letters match: nothing to send back.")
        return 1 if args.yes else 0
    if args.dry_run:
        print(f"{len(chosen)} dead letters would be sent back:")
        _print_letters(chosen, args.json)
        return 0

    def publish(topic: str, data: bytes, content_type: str, event_id: str) -> None:
        client.publish(topic, data, content_type=content_type, metadata={"cloudevent.id": event_id})

    redrive_id, report = letters_module.redrive(chosen, publish)
    if args.json:
        print(json.dumps({"redrive_id": redrive_id, "letters": [
            {**letter.as_json(), "outcome": outcome, "detail": detail} for letter, outcome, detail in report]},
            indent=2))
    else:
        for letter, outcome, detail in report:
            print(f"  {letter.id:<16} {letter.kind:<9} {outcome:<7} {letter.order_id or '-':<30} {detail}")
        sent = sum(outcome == "SENT" for _, outcome, _ in report)
        print(f"Redrive {redrive_id}: {sent} of {len(report)} sent back; what is still refused comes back to the "
              f"dead letters with its reason (`deadletters list` shows it redriven by {redrive_id}).")
    return 0 if all(outcome != "FAILED" for _, outcome, _ in report) else 1


def _letters_filter(args) -> str:
    parts = [f"{name} {value}" for name, value in (("id", ", ".join(args.id)), ("kind", args.kind),
                                                    ("reason", args.reason), ("order", args.order)) if value]
    return ", ".join(parts)


def _print_letters(chosen: list, as_json: bool, filtered: str = "") -> int:
    if as_json:
        print(json.dumps([letter.as_json() for letter in chosen], indent=2))
        return 0
    if not chosen:
        print(f"No dead letters match ({filtered})." if filtered else "No dead letters.")
    for letter in chosen:
        again = f" (again, after redrive {letter.redriven_by})" if letter.redriven_by else ""
        print(f"{letter.id:<16} {letter.kind:<9} {letter.time[:19]:<19} {letter.order_id or '-':<30} "
              f"{letter.reason[:100]}{again}")
    return 0
