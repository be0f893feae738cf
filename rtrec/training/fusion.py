"""Offline tuning of the scoring job's fusion weights on a time-based split.

Each evaluation example gets the candidate lists the live sources would give it, built from
training-period data only: the user's own recent items, the online CF's published scores, the
deep model's top items, what was trending at the split (recent popularity), and content
neighbours of the last item (same category, close in price, popular). The lists go through the
scoring job's own fusion (``rtrec.scoring.fusion.fuse``), so the weights found are the weights
the job applies. Every source is also scored alone, so the report shows what each contributes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rtrec.cf.params import CfParams
from rtrec.models.vocabulary import FIRST_ITEM
from rtrec.scoring.candidates import (
    CF,
    CONTENT,
    MODEL,
    RECENT,
    TRENDING,
    Candidate,
    Reason,
    Source,
)
from rtrec.scoring.fusion import fuse
from rtrec.training.baselines import online_cf_scores, recent_popularity
from rtrec.training.data import Split, Step
from rtrec.training.metrics import Evaluation, evaluate

Sources = dict[Source, list[Candidate]]
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Tuned:
    weights: dict[Source, float]
    fused: Evaluation
    alone: dict[Source, Evaluation]  # each source by itself
    tried: int


def _top(row: Any, n: int, source: Source, anchor: str = "") -> list[Candidate]:
    scores = np.asarray(row, dtype=np.float64).copy()
    scores[:FIRST_ITEM] = -np.inf
    n = min(n, int(np.isfinite(scores).sum()))
    best = np.argsort(-scores, kind="stable")[:n]
    return [Candidate(str(i), float(scores[i]), Reason(source, anchor)) for i in best]


def offline_sources(
    split: Split,
    steps: Mapping[str, Sequence[Step]],
    model_scores: Any,
    categories: Sequence[int],
    buckets: Sequence[int],
    cf: CfParams,
    per_source: int,
) -> list[Sources]:
    """Per evaluation example, each source's candidates (items as vocabulary indices)."""
    n_items = len(split.vocabulary)
    cf_scores = online_cf_scores(steps, split, cf)
    trending = recent_popularity(
        split.train, split.train_times, n_items, split.split_ts, 24 * HOUR_MS
    )
    trending_top = _top(trending, per_source, TRENDING)
    by_category: dict[int, list[int]] = {}
    for item in np.argsort(-trending, kind="stable"):
        if item >= FIRST_ITEM and categories[item]:
            by_category.setdefault(categories[item], []).append(int(item))
    out: list[Sources] = []
    for row, history in enumerate(split.histories):
        newest = list(dict.fromkeys(reversed(history)))[:per_source]
        recent = [
            Candidate(str(i), 1.0 / (rank + 1), Reason(RECENT))
            for rank, i in enumerate(newest)
            if i >= FIRST_ITEM
        ]
        content: list[Candidate] = []
        last = history[-1] if history else 0
        if last >= FIRST_ITEM and categories[last]:
            pool = [i for i in by_category.get(categories[last], []) if i != last][: per_source * 4]
            scored = [(i, trending[i] / (1.0 + abs(buckets[i] - buckets[last]))) for i in pool]
            scored.sort(key=lambda s: -s[1])
            content = [Candidate(str(i), float(s), Reason(CONTENT)) for i, s in scored[:per_source]]
        out.append(
            {
                RECENT: recent,
                CF: _top(cf_scores[row], per_source, CF) if cf_scores[row].any() else [],
                MODEL: _top(model_scores[row], per_source, MODEL),
                TRENDING: trending_top,
                CONTENT: content,
            }
        )
    return out


def evaluate_fusion(
    sources: Sequence[Sources], weights: Mapping[Source, float], split: Split
) -> Evaluation:
    """Full-ranking metrics of the fused lists (an item no source proposes ranks last)."""
    scores = np.full((len(sources), len(split.vocabulary)), -np.inf)
    for row, by_source in enumerate(sources):
        for scored in fuse(by_source, weights):
            scores[row, int(scored.item)] = scored.score
    seen = [set(h) for h in split.histories]
    return evaluate(scores, np.array(split.targets), seen, (0, 1))


def tune_weights(
    sources: Sequence[Sources],
    split: Split,
    grid: Sequence[float] = (0.0, 0.1, 0.3, 1.0, 3.0),
    rounds: int = 2,
) -> Tuned:
    """Coordinate ascent on NDCG@10 over all targets: from equal weights, each source in turn
    takes the grid value that scores best with the others fixed, for ``rounds`` rounds (only
    ratios matter, and a full grid over five sources costs far more for little more). Each
    source is also scored alone."""
    every = (RECENT, CF, MODEL, TRENDING, CONTENT)
    alone = {s: evaluate_fusion(sources, {s: 1.0}, split) for s in every}
    weights: dict[Source, float] = dict.fromkeys(every, 1.0)
    best = evaluate_fusion(sources, weights, split)
    tried = 1
    for _ in range(rounds):
        for source in every:
            for value in grid:
                if value == weights[source]:
                    continue
                candidate = {**weights, source: value}
                if not any(candidate.values()):
                    continue
                result = evaluate_fusion(sources, candidate, split)
                tried += 1
                if result.all_targets.ndcg_at_10 > best.all_targets.ndcg_at_10:
                    weights, best = candidate, result
    return Tuned(weights, best, alone, tried)
