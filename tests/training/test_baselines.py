"""Baselines and the item vocabulary on hand-checked examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rtrec.cf.history import CfEvent
from rtrec.cf.params import CfParams
from rtrec.cf.reference import compute_reference
from rtrec.models.vocabulary import FIRST_ITEM, PAD, UNKNOWN, ItemVocabulary
from rtrec.training.baselines import (
    als_scores,
    item_cosine,
    knn_scores,
    online_cf_scores,
    popularity,
    recent_popularity,
    same_for_all,
)
from rtrec.training.data import Step, time_split
from rtrec.training.metrics import evaluate

pytestmark = pytest.mark.unit

# Items 2..5; two users.
SEQUENCES = [[2, 3, 2, 4], [3, 4, 5]]
TIMES = [[0, 1000, 2000, 3000], [3000, 4000, 5000]]


def test_vocabulary() -> None:
    vocabulary = ItemVocabulary.of(["b", "a", "b", "c"])
    assert len(vocabulary) == 5
    assert vocabulary.indices(["a", "c", "zzz"]) == [2, 4, UNKNOWN]
    assert vocabulary.item(3) == "b" and vocabulary.item(PAD) is None
    with pytest.raises(ValueError):
        ItemVocabulary(("a", "a"))


def test_popularity_counts_and_never_scores_padding_or_unknown() -> None:
    assert popularity(SEQUENCES, 6).tolist() == [0, 0, 2, 2, 2, 1]
    # One hour half-life would make them equal; one second makes the newest events count most.
    recent = recent_popularity(SEQUENCES, TIMES, 6, as_of_ms=5000, half_life_ms=1000)
    assert recent[:2].tolist() == [0, 0]
    assert recent[5] == 1.0  # age 0
    assert recent[4] == pytest.approx(0.5**2 + 0.5**1)  # ages 2 s and 1 s
    assert recent[2] == pytest.approx(0.5**5 + 0.5**3)


def test_item_cosine_by_hand() -> None:
    # Window 1: adjacent pairs (2,3) (3,2) (2,4) | (3,4) (4,5). Counts: 2-3: 2, 2-4: 1, 3-4: 1,
    # 4-5: 1. Norms: |2| = sqrt(4 + 1), |3| = sqrt(4 + 1), |4| = sqrt(1 + 1 + 1), |5| = 1.
    cosine = item_cosine(SEQUENCES, 6, window=1).toarray()
    assert cosine[2, 3] == pytest.approx(2 / (math.sqrt(5) * math.sqrt(5)))
    assert cosine[4, 5] == pytest.approx(1 / math.sqrt(3))
    assert cosine[2, 5] == 0.0
    assert np.allclose(cosine, cosine.T) and not cosine.diagonal().any()
    # A wider window adds the pairs two apart: (2,2) is skipped, (3,4) and (3,5) added.
    assert item_cosine(SEQUENCES, 6, window=2).toarray()[3, 5] > 0.0


def test_knn_scores_sum_the_history_similarities() -> None:
    cosine = item_cosine(SEQUENCES, 6, window=1)
    scores = knn_scores(cosine, [[2, 2], [4, 5]])
    dense = cosine.toarray()
    assert scores[0].tolist() == pytest.approx(dense[2].tolist())  # 2 counted once
    assert scores[1].tolist() == pytest.approx((dense[4] + dense[5]).tolist())
    assert scores[:, :2].sum() == 0.0
    # The scores feed the full-ranking metrics as any model's do.
    result = evaluate(scores, np.array([3, 3]), seen=[{2}, {4, 5}])
    assert result.all_targets.hr_at_10 == 1.0
    assert same_for_all(popularity(SEQUENCES, 6), 3).shape == (3, 6)


def test_als_folds_in_a_history_and_ranks_its_group_first() -> None:
    # Two groups of items that users consume together: 2-6 and 7-11.
    groups = [list(range(2, 7)), list(range(7, 12))]
    rng = np.random.default_rng(0)
    sequences = [list(rng.permutation(groups[u % 2])) for u in range(40)]
    scores = als_scores(
        sequences, [[2, 3], [8]], n_items=12, factors=4, regularization=0.01, iterations=10
    )
    assert scores.shape == (2, 12) and not scores[:, :FIRST_ITEM].any()
    # Each history (of users never seen in training) ranks its own group above the other.
    assert scores[0, 2:7].min() > scores[0, 7:12].max()
    assert scores[1, 7:12].min() > scores[1, 2:7].max()


def test_online_cf_scores_are_what_the_stream_publishes() -> None:
    hour = 3_600_000
    steps = {
        "u1": [Step(0, "a", "view"), Step(hour, "b", "add_to_cart"), Step(2 * hour, "c", "view")],
        "u2": [Step(0, "a", "click"), Step(hour, "c", "purchase")],
        "u3": [Step(0, "b", "view"), Step(5 * hour, "a", "view"), Step(6 * hour, "d", "view")],
    }
    split = time_split(steps, split_ts=5 * hour)  # u3's a and d are its evaluation steps
    assert split.examples == [("u3", 1)]  # d is unknown to training: left out
    params = CfParams()
    scores = online_cf_scores(steps, split, params)
    # u3's only step before its target is its whole pre-split history, so its scores are the
    # ones the batch definition of the stream computes from the training events.
    events = [
        CfEvent(f"{u}/{n}", u, s.item, s.event_type, s.ts)
        for u, seq in steps.items()
        for n, s in enumerate(seq)
        if s.ts < split.split_ts
    ]
    published = dict(compute_reference(events, params).scores["u3"])
    assert set(published) == {"a", "c"}  # b's neighbours; b itself is history
    for item, score in published.items():
        assert scores[0, split.vocabulary.index(item)] == pytest.approx(score)
    assert scores[0, split.vocabulary.index("b")] == 0.0
