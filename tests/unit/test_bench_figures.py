"""The bench's pure parts: the Zipf SKU spread (same draws for the same seed, the right shape),
the overload summary, and the growth row's verdict on whether the stores levelled off."""

from __future__ import annotations

import collections
import math
import random

import pytest

from ordersaga.bench.core import StepResult
from ordersaga.bench.growth import Sample, interpolate, levelling, summary_lines
from ordersaga.bench.overload import overload_summary, percentile_ms
from ordersaga.bench.spread import HotSkus, ZipfSampler, ZipfSkus


def test_zipf_draws_are_the_same_for_the_same_seed_and_differ_for_another():
    spread = ZipfSkus("t")
    first = [spread.pick(rng, 3) for rng in [spread.rng()] for _ in range(200)]
    again = [spread.pick(rng, 3) for rng in [spread.rng()] for _ in range(200)]
    other = ZipfSkus("t", seed=99)
    different = [other.pick(rng, 3) for rng in [other.rng()] for _ in range(200)]
    assert first == again
    assert first != different


def test_zipf_shape_follows_one_over_rank():
    sampler = ZipfSampler(1000, 1.0)
    harmonic = sum(1 / k for k in range(1, 1001))
    assert sampler.probability(0) == pytest.approx(1 / harmonic)
    assert sampler.probability(1) == pytest.approx(sampler.probability(0) / 2)
    assert math.fsum(sampler.probability(r) for r in range(1000)) == pytest.approx(1.0)
    rng = random.Random(1)
    counts = collections.Counter(sampler.draw(rng) for _ in range(50_000))
    assert counts[0] / 50_000 == pytest.approx(0.134, abs=0.01)  # the top SKU: about 13 %
    assert sum(counts[r] for r in range(10)) / 50_000 == pytest.approx(0.391, abs=0.015)  # top 10: 39 %
    assert counts[0] > counts[1] > counts[4] > counts[50]
    assert set(counts) <= set(range(1000)) and len(counts) > 900  # the long tail is drawn too


def test_an_order_never_names_a_sku_twice():
    spread = ZipfSkus("t", count=5)
    rng = spread.rng()
    for _ in range(500):
        skus = spread.pick(rng, 5)
        assert sorted(skus) == sorted(set(skus)) and len(skus) == 5
    with pytest.raises(ValueError):
        spread.sampler.draw_distinct(rng, 6)


def test_the_hot_spread_is_todays_three_skus():
    assert HotSkus("b").pick(None, 3) == ["b-sku0", "b-sku1", "b-sku2"]


def test_levelling_tells_linear_growth_from_growth_that_stops():
    linear = [(t, 1000 + 10 * t) for t in range(0, 601, 30)]
    _, _, verdict = levelling(linear)
    assert verdict.startswith("still growing (last third 100%")
    # Grows for 2 minutes (until the first purge), then only a little.
    stops = [(t, 1000 + 10 * min(t, 120) + 0.2 * t) for t in range(0, 601, 30)]
    first, last, verdict = levelling(stops)
    assert first > 0 and last == pytest.approx(0.2 * 200)
    assert verdict.startswith("levelled off")
    half = [(t, 1000 + 10 * min(t, 200) + 4 * max(0, t - 200)) for t in range(0, 601, 30)]
    assert levelling(half)[2].startswith("slowing, not level")
    assert levelling([(0, 1), (30, 1), (60, 1), (90, 1)])[2] == "level throughout"
    assert levelling([(0, 1), (30, 2)])[2] == "too few samples to tell"


def test_interpolate_between_samples():
    points = [(0, 0), (30, 300), (60, 300)]
    assert interpolate(points, 15) == 150
    assert interpolate(points, 45) == 300
    assert interpolate(points, -1) == 0 and interpolate(points, 99) == 300


def test_growth_summary_has_a_line_per_size_series():
    samples = [Sample(t, t * 10, 2**20 + t * 1024, 2**19 + t * 512) for t in range(0, 121, 30)]
    lines = summary_lines(samples)
    assert len(lines) == 2 and lines[0].startswith("    growth, store: 1.0 MB -> ") and "still growing" in lines[0]
    assert "KB per saga ended" in lines[1]
    sqlite_free = [Sample(s.elapsed, s.ended, s.store, None) for s in samples]
    assert len(summary_lines(sqlite_free)) == 1  # PostgreSQL: no separate main-file size


def test_percentile_ms():
    assert math.isnan(percentile_ms([], 50))
    assert percentile_ms([5, 1, 3], 50) == 3 and percentile_ms(list(range(101)), 95) == 95


def test_overload_summary_counts_refusals_apart_and_finds_the_lost():
    result = StepResult("overload 4x, hot SKUs", offered=6, accepted=["a", "b", "c"], refused=["r1", "r2"],
                        refusal_ms=[3.0, 40.0], failed=["t"], ended={"a": 0.5, "b": 1.5, "t": 2.0},
                        refusal_detail="too many sagas in flight, retry in 1s")
    result.error_codes.update({"RESOURCE_EXHAUSTED": 2, "DEADLINE_EXCEEDED": 1})
    text = overload_summary(result, capacity=10, rate=40, seconds=10, existing=[], checked=2)
    assert "6 offered, 3 accepted, 2 refused (RESOURCE_EXHAUSTED), 1 other errors (DEADLINE_EXCEEDED 1; " \
           "1 of them ended anyway" in text
    assert "accepted orders: 2 ended, p50 500 ms, p95 1500 ms (target < 2000 ms: met); " \
           "lost (accepted, never ended) 1 (must be 0): c" in text
    assert "refusals came back in p50 3 ms, p95 40 ms, max 40 ms (target 100 ms: met); " \
           "refused orders that exist: 0 of 2 checked" in text
    assert "retry in 1s" in text
    nothing = overload_summary(StepResult("x", offered=1, accepted=["a"], ended={"a": 0.1}), 10, 40, 10, [], 0)
    assert "nothing refused" in nothing and "lost (accepted, never ended) 0" in nothing
