"""Hypothesis strategies for what reaches ordersaga from outside: ids, numbers, line items, order
requests, CLI arguments and event payloads. Valid values are mixed with the ones around every
bound (the id pattern, the domain's limits, int32/int64) and with plain junk, so one strategy
exercises both the accepted and the refused side of a door."""

from __future__ import annotations

import uuid

from hypothesis import strategies as st

from order_service.domain import ID_PATTERN, MAX_LINES

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
MAX_QUANTITY = 1_000_000  # domain.LineItem's bounds
MAX_PRICE_CENTS = 100_000_000_00


def unique(prefix: str = "f") -> str:
    """An id no other example uses: an accepted order must be new to be checked as such."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# ---- ids ------------------------------------------------------------------------------------

# Text Hypothesis likes to break things with: unicode of every category, but no lone surrogates
# (protobuf cannot encode them, so no gRPC client can send them; the CLI is fuzzed with them).
any_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=80)

tricky_ids = st.sampled_from([
    "", " ", "a" * 64, "a" * 65, "a" * 10_000, "-a", ".a", "a/b", "a b", "a\n", "a\x00", "a?b", "a#b", "a%2Fb",
    "../a", "a..", "é", "ａ", "a\u200b", "١٢٣", "😀", "a:b", "A.b_c-d:e",
])

order_ids = st.one_of(st.from_regex(ID_PATTERN), tricky_ids, any_text)


# ---- numbers --------------------------------------------------------------------------------

def around(*bounds: int) -> st.SearchStrategy[int]:
    """Integers at, just below and just above each bound."""
    return st.sampled_from(sorted({b + d for b in bounds for d in (-1, 0, 1)}))


quantities = st.one_of(st.integers(1, 20), around(0, MAX_QUANTITY, INT32_MAX), st.integers(-(2**31), INT32_MAX))
prices = st.one_of(st.integers(1, 200_000), around(0, MAX_PRICE_CENTS, INT64_MAX),
                   st.integers(-(2**63), INT64_MAX))


# ---- orders ---------------------------------------------------------------------------------

@st.composite
def line_items(draw, sku: st.SearchStrategy[str] | None = None) -> dict:
    return {"sku": draw(sku or st.one_of(st.from_regex(ID_PATTERN, fullmatch=True), tricky_ids)),
            "quantity": draw(quantities), "unit_price_cents": draw(prices)}


@st.composite
def order_requests(draw) -> dict:
    """PlaceOrder's fields as a dict. The order id is fresh (with a tricky one now and then),
    so that an accepted request can be read back as the one that created the order."""
    order_id = draw(st.one_of(st.just(unique()), st.just(unique()), order_ids))
    items = draw(st.one_of(
        st.lists(line_items(), min_size=1, max_size=4),
        st.just([]),
        st.integers(MAX_LINES - 1, MAX_LINES + 1).map(
            lambda n: [{"sku": f"s{k}", "quantity": 1, "unit_price_cents": 1} for k in range(n)]),
        st.lists(line_items(), min_size=1, max_size=3).map(lambda items: items + items[:1]),  # a sku twice
    ))
    return {"order_id": order_id, "customer_id": draw(st.one_of(st.just("fuzz-customer"), order_ids)),
            "items": items}


# ---- event payloads -------------------------------------------------------------------------

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), any_text),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(any_text, inner, max_size=4)),
    max_leaves=12,
)
