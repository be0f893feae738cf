"""The same training function run by Horovod's Spark runner (two Spark tasks, gloo) trains a
model as good as one process does, on the same split."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rtrec.config import load_settings
from rtrec.sources.simulator import Simulator
from rtrec.training.data import item_side_features, split_at_share, time_split, user_steps
from rtrec.training.distributed import train_with_horovod
from rtrec.training.loop import TrainConfig, TrainResult, score_histories, train_sasrec
from rtrec.training.metrics import evaluate
from rtrec.training.quality import EXCLUDED

pytestmark = [pytest.mark.component, pytest.mark.spark]

NDCG_TOLERANCE = 0.10  # relative, as for TorchDistributor (test_torch_distributor.py)


def test_horovod_two_processes_train_as_well_as_one(spark: Any) -> None:
    settings = load_settings("local", ["simulator.users=800"])
    events = list(Simulator(settings.simulator, events=20_000, days=30).events())
    steps = user_steps(events)
    split = time_split(steps, split_at_share(steps, 0.2))
    categories, buckets, _ = item_side_features(split.vocabulary, events)
    config = TrainConfig(epochs=8, dropout=0.0)

    def ndcg(result: TrainResult) -> float:
        scores = score_histories(result.model, split.histories)
        seen = [set(h) for h in split.histories]
        return evaluate(scores, np.array(split.targets), seen, EXCLUDED).all_targets.ndcg_at_10

    one = train_sasrec(split.train, categories, buckets, config)
    two = train_with_horovod(split.train, categories, buckets, config, processes=2)
    assert two.windows == one.windows
    assert ndcg(one) > 0.1
    assert ndcg(two) == pytest.approx(ndcg(one), rel=NDCG_TOLERANCE)
