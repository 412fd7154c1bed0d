"""The bootstrap interval `bench/vs_ray_serve_llm.py` prints beside each TTFT ratio."""

from __future__ import annotations

import random
import sys

from orchestrator.paths import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "bench"))

from vs_ray_serve_llm import TTFT_STATS, ratio_interval  # noqa: E402

MEDIAN, P95 = TTFT_STATS["median"], TTFT_STATS["p95"]


def _ttfts(centre: float, n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [max(0.01, rng.gauss(centre, 0.1 * centre)) for _ in range(n)]


def test_two_draws_of_one_distribution_give_an_interval_around_one():
    lo, hi = ratio_interval(_ttfts(0.2, 200, 1), _ttfts(0.2, 200, 2), MEDIAN)
    assert lo < 1.0 < hi and hi - lo < 0.1


def test_a_side_20_percent_slower_gives_an_interval_that_excludes_one():
    lo, hi = ratio_interval(_ttfts(0.24, 200, 1), _ttfts(0.2, 200, 2), MEDIAN)
    assert 1.1 < lo < 1.2 < hi < 1.3


def test_the_interval_is_reproducible_and_widens_with_fewer_requests():
    ours, plain = _ttfts(0.2, 200, 3), _ttfts(0.2, 200, 4)
    assert ratio_interval(ours, plain, P95) == ratio_interval(ours, plain, P95)
    wide = ratio_interval(ours[:20], plain[:20], MEDIAN)
    narrow = ratio_interval(ours, plain, MEDIAN)
    assert wide[1] - wide[0] > narrow[1] - narrow[0]
