import json

import pytest

from order_service.approvals import parse_decision


def test_a_valid_decision_parses_from_bytes_or_dict():
    data = {"order_id": "o-1", "decision": "approve", "approver": "ann", "reason": ""}
    assert parse_decision(json.dumps(data).encode()).approver == "ann"
    assert parse_decision(data).decision == "approve"


@pytest.mark.parametrize(
    "data, says",
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (json.dumps({"order_id": "o-1"}).encode(), "decision"),
        (json.dumps({"order_id": 5, "decision": "approve"}).encode(), "order_id"),
        (json.dumps([1, 2]).encode(), "data"),
    ],
)
def test_malformed_decisions_say_why(data, says):
    with pytest.raises(ValueError, match=says):
        parse_decision(data)
