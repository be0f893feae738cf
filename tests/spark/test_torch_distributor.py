"""The training function run by Spark's TorchDistributor with two processes (gloo on CPU)
trains a model as good as one process does, on the same split."""

from __future__ import annotations

import pytest
from conftest import TrainingData

from rtrec.training.distributed import train_with_torch_distributor
from rtrec.training.loop import TrainConfig, TrainResult, train_sasrec
from rtrec.training.quality import evaluate_model

pytestmark = [pytest.mark.component, pytest.mark.spark]

# Relative NDCG@10 gap allowed between one and two processes: DDP averages the two halves of
# each batch (each a mean over its own positions), so the updates are close, not identical.
NDCG_TOLERANCE = 0.10


def test_two_processes_train_as_well_as_one(spark: object, training_data: TrainingData) -> None:
    split = training_data.split
    data = (split.train, training_data.categories, training_data.buckets)
    config = TrainConfig(epochs=8, dropout=0.0)

    def ndcg(result: TrainResult) -> float:
        return evaluate_model(result.model, split).all_targets.ndcg_at_10

    one = train_sasrec(*data, config)
    two = train_with_torch_distributor(*data, config, processes=2)
    assert two.windows == one.windows  # the two ranks shared every batch between them
    assert ndcg(one) > 0.1
    assert ndcg(two) == pytest.approx(ndcg(one), rel=NDCG_TOLERANCE)
