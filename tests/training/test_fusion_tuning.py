"""Offline fusion tuning finds the source that predicts, through the scoring job's own fuse."""

from __future__ import annotations

import pytest

from rtrec.models.vocabulary import ItemVocabulary
from rtrec.scoring.candidates import CF, CONTENT, MODEL, RECENT, TRENDING, Candidate, Reason
from rtrec.training.data import Split
from rtrec.training.fusion import evaluate_fusion, tune_weights

pytestmark = pytest.mark.unit


def test_tuning_weights_the_predictive_source_up_and_reports_each_alone() -> None:
    vocabulary = ItemVocabulary.of(["a", "b", "c", "d"])  # indices 2..5
    targets = [2, 3, 4, 5, 2, 3]
    split = Split(vocabulary, 0, [], [], [[5]] * 6, targets, [("u", 1)] * 6, 0)

    def listed(source, items):  # type: ignore[no-untyped-def]
        return [Candidate(str(i), float(10 - n), Reason(source)) for n, i in enumerate(items)]

    sources = [
        {
            CONTENT: listed(CONTENT, [t, *(i for i in (2, 3, 4, 5) if i != t)]),  # right first
            MODEL: listed(MODEL, [i for i in (5, 4, 3, 2) if i != t] + [t]),  # right last
            TRENDING: listed(TRENDING, [2, 3, 4, 5]),
            RECENT: [],
            CF: [],
        }
        for t in targets
    ]
    tuned = tune_weights(sources, split)
    assert tuned.alone[CONTENT].all_targets.ndcg_at_10 == pytest.approx(1.0)
    assert tuned.fused.all_targets.ndcg_at_10 == pytest.approx(1.0)
    assert tuned.weights[CONTENT] > tuned.weights[MODEL]
    equal = evaluate_fusion(sources, dict.fromkeys((CONTENT, MODEL), 1.0), split)
    assert equal.all_targets.ndcg_at_10 < 1.0  # the model's wrong lists cost, unweighted
