"""The sequential model against the baselines on one time-based split of events: the
comparison ``bench/quality.py`` prints and the quality test holds (same split, same items,
same full-ranking metrics for everyone)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rtrec.cf.params import CfParams
from rtrec.models.vocabulary import PAD, UNKNOWN
from rtrec.training.baselines import (
    als_scores,
    item_cosine,
    knn_scores,
    online_cf_scores,
    popularity,
    recent_popularity,
    same_for_all,
)
from rtrec.training.data import (
    Split,
    Step,
    item_side_features,
    split_at_share,
    time_split,
)
from rtrec.training.loop import TrainConfig, TrainResult, score_histories, train_sasrec
from rtrec.training.metrics import Evaluation, evaluate

HOUR_MS = 3_600_000
EXCLUDED = (PAD, UNKNOWN)  # never recommended


@dataclass(frozen=True)
class Comparison:
    split: Split
    trained: TrainResult
    evaluation_s: float  # scoring and metrics of the model
    results: dict[str, Evaluation]  # "sasrec" first, then the baselines


def model_scores(model: Any, split: Split) -> Any:
    """The model's (examples, items) scores on the split's evaluation histories."""
    return score_histories(model, split.histories)


def baseline_scores(
    split: Split,
    steps: Mapping[str, Sequence[Step]],
    cf: CfParams,
    knn_window: int = 5,
    recent_half_life_ms: int = 24 * HOUR_MS,
) -> dict[str, Any]:
    """Each baseline's (examples, items) scores on the split's evaluation examples (``steps``
    are the users' steps the split was made from; ``cf`` the online CF's parameters)."""
    n_items, examples = len(split.vocabulary), len(split.targets)
    recent = recent_popularity(
        split.train, split.train_times, n_items, split.split_ts, recent_half_life_ms
    )
    return {
        "popularity": same_for_all(popularity(split.train, n_items), examples),
        "recent popularity": same_for_all(recent, examples),
        "item-KNN": knn_scores(
            item_cosine(split.train, n_items, knn_window),
            [h[-knn_window:] for h in split.histories],
        ),
        "ALS": als_scores(split.train, split.histories, n_items),
        "online CF": online_cf_scores(steps, split, cf),
    }


def evaluate_model(model: Any, split: Split) -> Evaluation:
    """The model's full-ranking metrics on the split's evaluation examples."""
    seen = [set(h) for h in split.histories]
    return evaluate(model_scores(model, split), np.array(split.targets), seen, EXCLUDED)


def evaluate_baselines(
    split: Split, steps: Mapping[str, Sequence[Step]], cf: CfParams
) -> dict[str, Evaluation]:
    """Every baseline's full-ranking metrics on the same examples."""
    seen = [set(h) for h in split.histories]
    targets = np.array(split.targets)
    return {
        name: evaluate(scores, targets, seen, EXCLUDED)
        for name, scores in baseline_scores(split, steps, cf).items()
    }


def evaluate_all(
    model: Any, split: Split, steps: Mapping[str, Sequence[Step]], cf: CfParams
) -> dict[str, Evaluation]:
    """The model ("sasrec") and then every baseline."""
    return {"sasrec": evaluate_model(model, split), **evaluate_baselines(split, steps, cf)}


def compare(
    steps: Mapping[str, Sequence[Step]],
    items: Iterable[Mapping[str, Any]],
    config: TrainConfig,
    test_share: float = 0.2,
    cf: CfParams | None = None,
) -> Comparison:
    """Split ``steps`` by time, train SASRec on the training part (item side features from
    ``items``: events or catalogue rows), and score it and every baseline on the rest."""
    split = time_split(steps, split_at_share(steps, test_share))
    categories, buckets, _ = item_side_features(split.vocabulary, items)
    trained = train_sasrec(split.train, categories, buckets, config)
    started = time.perf_counter()
    model = evaluate_model(trained.model, split)
    evaluation_s = time.perf_counter() - started
    baselines = evaluate_baselines(split, steps, cf or CfParams())
    return Comparison(split, trained, evaluation_s, {"sasrec": model, **baselines})
