"""Full-ranking evaluation of next-item recommendation (numpy only, no sampled negatives).

Every model and baseline hands in one score per catalogue item for each evaluation example;
the target's rank is counted against the whole catalogue. Ties rank by item index (the smaller
index first), the same order ``top_k`` lists use, so rank and list never disagree. Repeats are
valid targets (shoppers return to what they viewed): the user's own items are not masked, and
``evaluate`` reports every metric on all targets and, separately, on targets new to the user.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

Scores = npt.NDArray[np.floating]  # (examples, items)
Indices = npt.NDArray[np.integer]

HR_K = 10
NDCG_K = 10
RECALL_K = 20
MRR_K = 20
COVERAGE_K = 10


@dataclass(frozen=True)
class RankingMetrics:
    """Means over the examples; ``coverage`` is the share of the catalogue in any top-10."""

    examples: int
    hr_at_10: float
    ndcg_at_10: float
    recall_at_20: float
    mrr_at_20: float
    coverage_at_10: float

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}{name}": float(value) for name, value in asdict(self).items()}


@dataclass(frozen=True)
class Evaluation:
    all_targets: RankingMetrics
    new_targets: RankingMetrics  # targets the user had not interacted with before

    def as_dict(self) -> dict[str, float]:
        return {**self.all_targets.as_dict("all_"), **self.new_targets.as_dict("new_")}


def target_ranks(scores: Scores, targets: Indices, excluded: Sequence[int] = (0,)) -> Indices:
    """1-based rank of each row's target among all items; ``excluded`` columns (padding,
    unknown) never outrank anything."""
    scores = np.array(scores, dtype=np.float64, copy=True)
    scores[:, list(excluded)] = -np.inf
    rows = np.arange(len(targets))
    target_scores = scores[rows, targets][:, None]
    better = (scores > target_scores).sum(axis=1)
    columns = np.arange(scores.shape[1])[None, :]
    tied_before = ((scores == target_scores) & (columns < np.asarray(targets)[:, None])).sum(axis=1)
    ranks: Indices = 1 + better + tied_before
    return ranks


def top_k(scores: Scores, k: int, excluded: Sequence[int] = (0,)) -> Indices:
    """The ``k`` best items of each row, best first, ties by smaller index."""
    scores = np.array(scores, dtype=np.float64, copy=True)
    scores[:, list(excluded)] = -np.inf
    k = min(k, scores.shape[1] - len(set(excluded)))  # excluded items never make a list
    # A stable sort of the negated scores keeps tied items in index order.
    order: Indices = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order


def ranking_metrics(ranks: Indices, tops: Indices, n_items: int) -> RankingMetrics:
    """Metrics from target ranks and top-``COVERAGE_K`` lists; ``n_items`` counts the items
    that may be recommended (padding and unknown left out)."""
    ranks = np.asarray(ranks)
    if len(ranks) == 0:
        return RankingMetrics(0, *([float("nan")] * 5))
    in_ndcg = ranks <= NDCG_K
    return RankingMetrics(
        examples=len(ranks),
        hr_at_10=float(np.mean(ranks <= HR_K)),
        ndcg_at_10=float(np.mean(np.where(in_ndcg, 1.0 / np.log2(ranks + 1.0), 0.0))),
        # One target per example: recall@k is the hit rate at k.
        recall_at_20=float(np.mean(ranks <= RECALL_K)),
        mrr_at_20=float(np.mean(np.where(ranks <= MRR_K, 1.0 / ranks, 0.0))),
        coverage_at_10=len(np.unique(np.asarray(tops)[:, :COVERAGE_K])) / n_items,
    )


def evaluate(
    scores: Scores,
    targets: Indices,
    seen: Sequence[set[int]],
    excluded: Sequence[int] = (0,),
) -> Evaluation:
    """Metrics of one score matrix: on all targets, and on those not in the user's ``seen``
    items (what the user interacted with before the target)."""
    targets = np.asarray(targets)
    ranks = target_ranks(scores, targets, excluded)
    tops = top_k(scores, COVERAGE_K, excluded)
    n_items = scores.shape[1] - len(set(excluded))
    new = np.array([int(t) not in s for t, s in zip(targets, seen, strict=True)], dtype=bool)
    return Evaluation(
        all_targets=ranking_metrics(ranks, tops, n_items),
        new_targets=ranking_metrics(ranks[new], tops[new], n_items),
    )
