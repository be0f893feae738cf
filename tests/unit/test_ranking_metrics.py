"""Full-ranking metrics on hand-checked examples (rtrec.training.metrics)."""

import math

import numpy as np
import pytest

from rtrec.training.metrics import evaluate, target_ranks, top_k

pytestmark = pytest.mark.unit

# Column 0 is padding. Row 0 ranks its target (3) second; row 1 puts it fourth, after item 4
# and the items tied with it at smaller indices (1, 2).
SCORES = np.array([[9.0, 0.9, 0.5, 0.7, 0.1], [9.0, 0.2, 0.2, 0.2, 0.9]])
TARGETS = np.array([3, 3])


def test_ranks_count_the_whole_catalogue_and_break_ties_by_index() -> None:
    assert target_ranks(SCORES, TARGETS).tolist() == [2, 4]
    assert top_k(SCORES, 10).tolist() == [[1, 3, 2, 4], [4, 1, 2, 3]]


def test_metrics_by_hand() -> None:
    result = evaluate(SCORES, TARGETS, seen=[{3}, {1}])
    every = result.all_targets
    assert every.examples == 2
    assert every.hr_at_10 == every.recall_at_20 == 1.0
    assert every.ndcg_at_10 == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / 2)
    assert every.mrr_at_20 == pytest.approx((1 / 2 + 1 / 4) / 2)
    assert every.coverage_at_10 == 1.0  # four items, all in some top-10
    # Row 0's target is a repeat: only row 1 counts as new.
    new = result.new_targets
    assert new.examples == 1
    assert new.ndcg_at_10 == pytest.approx(1 / math.log2(5))
    assert result.as_dict()["new_mrr_at_20"] == pytest.approx(0.25)


def test_limits() -> None:
    # The target first: every metric is 1; nowhere near the top: every hit metric is 0.
    n = 40
    perfect = np.tile(np.arange(n, dtype=float)[::-1], (3, 1))  # item 1 best, then 2, ...
    best = evaluate(perfect, np.array([1, 1, 1]), seen=[set(), set(), set()]).all_targets
    assert (best.hr_at_10, best.ndcg_at_10, best.recall_at_20, best.mrr_at_20) == (1, 1, 1, 1)
    worst = evaluate(perfect, np.array([n - 1] * 3), seen=[set(), set(), set()]).all_targets
    assert (worst.hr_at_10, worst.ndcg_at_10, worst.recall_at_20, worst.mrr_at_20) == (0, 0, 0, 0)
    assert worst.coverage_at_10 == pytest.approx(10 / (n - 1))
    empty = evaluate(perfect, np.array([1, 1, 1]), seen=[{1}, {1}, {1}]).new_targets
    assert empty.examples == 0 and math.isnan(empty.ndcg_at_10)


def test_rank_and_list_agree_under_ties() -> None:
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, size=(200, 30)).astype(float)  # many ties
    targets = rng.integers(1, 30, size=200)
    ranks = target_ranks(scores, targets)
    tops = top_k(scores, 29)
    for rank, target, top in zip(ranks, targets, tops, strict=True):
        assert top[rank - 1] == target
