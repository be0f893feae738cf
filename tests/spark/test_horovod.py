"""The same training function run by Horovod's Spark runner (two Spark tasks, gloo) trains a
model as good as one process does, on the same split."""

from __future__ import annotations

import pytest
from conftest import TrainingData

from rtrec.training.distributed import train_with_horovod
from rtrec.training.loop import TrainConfig, TrainResult, train_sasrec
from rtrec.training.quality import evaluate_model

pytestmark = [pytest.mark.component, pytest.mark.spark]

NDCG_TOLERANCE = 0.10  # relative, as for TorchDistributor (test_torch_distributor.py)


def test_horovod_two_processes_train_as_well_as_one(
    spark: object, training_data: TrainingData
) -> None:
    split = training_data.split
    data = (split.train, training_data.categories, training_data.buckets)
    config = TrainConfig(epochs=8, dropout=0.0)

    def ndcg(result: TrainResult) -> float:
        return evaluate_model(result.model, split).all_targets.ndcg_at_10

    one = train_sasrec(*data, config)
    two = train_with_horovod(*data, config, processes=2)
    assert two.windows == one.windows
    assert ndcg(one) > 0.1
    assert ndcg(two) == pytest.approx(ndcg(one), rel=NDCG_TOLERANCE)
