"""`ordersaga bulk` and `ordersaga deadletters` without a stack: what they refuse, and what they
say when a filter selects nothing."""

from __future__ import annotations

import pytest

from order_service import orders_pb2 as pb
from ordersaga import cli_operations
from ordersaga import deadletters as letters_module
from ordersaga.cli import build_parser
from ordersaga.cli_orders import UsageError


class Api:
    def __init__(self, selected: int = 0):
        self.requests, self.selected = [], selected

    def StartBulkAction(self, request, timeout=None):
        self.requests.append(pb.BulkActionRequest.FromString(request.SerializeToString()))
        return pb.BulkAction(action=request.action, selected=self.selected, left_alone=2,
                             filter="status NEEDS_ATTENTION", state="DRY_RUN" if request.dry_run else "RUNNING")


class Client:
    def __init__(self, api):
        self.api, self.state = api, None

    def orders(self):
        return self.api


def test_a_bulk_action_needs_dry_run_or_yes_and_a_close_needs_a_note():
    api = Api(selected=3)
    with pytest.raises(UsageError, match="--dry-run .* --yes"):
        cli_operations.bulk_command(Client(api), build_parser().parse_args(["bulk", "retry"]))
    with pytest.raises(UsageError, match="--note"):
        cli_operations.bulk_command(Client(api), build_parser().parse_args(["bulk", "close", "--yes"]))
    assert api.requests == [], "nothing is asked of the API before the command is whole"


def test_a_bulk_action_whose_filter_selects_nothing_says_so_and_starts_nothing(capsys):
    api = Api(selected=0)
    args = build_parser().parse_args(["bulk", "retry", "--status", "NEEDS_ATTENTION", "--yes"])
    assert cli_operations.bulk_command(Client(api), args) == 1
    out = capsys.readouterr().out
    assert out.startswith("No orders match (status NEEDS_ATTENTION) that retry applies to") and "nothing to do" in out
    assert [r.dry_run for r in api.requests] == [True], "only the dry run was sent"


def test_a_dead_letter_listing_that_matches_nothing_says_what_it_looked_for(monkeypatch, capsys):
    import ordersaga.eventfeed

    monkeypatch.setattr(ordersaga.eventfeed, "feed_for", lambda state: None)
    monkeypatch.setattr(letters_module, "read", lambda feed, kinds=(), timeout=10: [])
    args = build_parser().parse_args(["deadletters", "list", "--order", "o-404"])
    assert cli_operations.deadletters_command(Client(Api()), args) == 0
    assert capsys.readouterr().out.strip() == "No dead letters match (order o-404)."
