"""Baselines and the item vocabulary on hand-checked examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rtrec.models.vocabulary import PAD, UNKNOWN, ItemVocabulary
from rtrec.training.baselines import (
    item_cosine,
    knn_scores,
    popularity,
    recent_popularity,
    same_for_all,
)
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
