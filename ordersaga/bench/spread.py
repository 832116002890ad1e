"""Which SKUs the bench's orders take: today's few hot SKUs, or a realistic spread.

Hot: every 3-line order takes the same three SKUs, so every reservation races on the same
three stock records (the worst case for the inventory's optimistic concurrency). Zipf: 1,000
SKUs whose popularity falls as 1/rank^s (s = 1: the top SKU is in about 13 % of the draws, the
top 10 in about 39 %, the top 100 in 69 %, and the 500th in 1 draw of 3,700), which is how
sales spread over a catalogue. The draws come from a seeded generator, so two runs order the same SKUs in
the same sequence and their figures compare.

Pure (no I/O): the bench seeds the stock of `skus` before a step and asks `pick` per order.
"""

from __future__ import annotations

import bisect
import itertools
import random

ZIPF_SKUS = 1000
ZIPF_EXPONENT = 1.0
ZIPF_SEED = 12


class ZipfSampler:
    """Ranks 0..n-1 drawn with probability proportional to 1/(rank+1)^s."""

    def __init__(self, n: int, s: float = ZIPF_EXPONENT):
        if n < 1:
            raise ValueError("n must be at least 1")
        self.n = n
        self.s = s
        weights = [1 / (rank + 1) ** s for rank in range(n)]
        total = sum(weights)
        self.cumulative = [c / total for c in itertools.accumulate(weights)]

    def probability(self, rank: int) -> float:
        return self.cumulative[rank] - (self.cumulative[rank - 1] if rank else 0.0)

    def draw(self, rng: random.Random) -> int:
        # min(): the last cumulative weight may round to just under 1.0
        return min(bisect.bisect_right(self.cumulative, rng.random()), self.n - 1)

    def draw_distinct(self, rng: random.Random, k: int) -> list[int]:
        """k different ranks (an order names each SKU on one line only): draw again on a repeat,
        which keeps each line's popularity close to Zipf for k much smaller than n."""
        if k > self.n:
            raise ValueError(f"cannot draw {k} distinct ranks of {self.n}")
        chosen: list[int] = []
        while len(chosen) < k:
            rank = self.draw(rng)
            if rank not in chosen:
                chosen.append(rank)
        return chosen


class HotSkus:
    """Today's spread: line i of every order takes SKU i (of 10), so 3-line orders all share
    the same three SKUs."""

    name = "hot"
    label = "hot SKUs"

    def __init__(self, prefix: str, count: int = 10):
        self.skus = [f"{prefix}-sku{n}" for n in range(count)]

    def rng(self) -> random.Random | None:
        return None

    def pick(self, rng: random.Random | None, lines: int) -> list[str]:
        return [self.skus[i % len(self.skus)] for i in range(lines)]


class ZipfSkus:
    """`count` SKUs with Zipf popularity; `rng()` gives a fresh generator with the fixed seed,
    one per step, so each step draws the same sequence in every run."""

    name = "zipf"

    def __init__(self, prefix: str, count: int = ZIPF_SKUS, s: float = ZIPF_EXPONENT, seed: int = ZIPF_SEED):
        self.skus = [f"{prefix}-z{rank}" for rank in range(count)]
        self.sampler = ZipfSampler(count, s)
        self.seed = seed
        self.label = f"zipf {count} SKUs"

    def rng(self) -> random.Random:
        return random.Random(self.seed)

    def pick(self, rng: random.Random | None, lines: int) -> list[str]:
        assert rng is not None, "a zipf spread draws from the step's generator"
        return [self.skus[rank] for rank in self.sampler.draw_distinct(rng, lines)]
