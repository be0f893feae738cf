"""Train small SASRec models on simulated events and register them, one version per seed: real
registered versions for the scoring job's tests and benchmarks, in seconds rather than a train
job's minutes (the app runtime they run in has no torch, so this runs in the spark one).

Usage: .venvs/spark/bin/python scripts/register_sasrec.py --seeds 1 2 --env local --set ...
Prints "registered version N" per seed, in seed order (MLflow prints lines of its own).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import mlflow

from rtrec.cli import add_config_arguments
from rtrec.config import load_settings
from rtrec.registry.recommender import log_recommender
from rtrec.sources.simulator import Simulator
from rtrec.training.data import item_side_features, split_at_share, time_split, user_steps
from rtrec.training.loop import TrainConfig, train_sasrec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_config_arguments(parser)
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--events", type=int, default=3_000)
    args = parser.parse_args()
    settings = load_settings(args.env, args.overrides)
    events = list(Simulator(settings.simulator, events=args.events, days=2).events())
    steps = user_steps(events)
    split = time_split(steps, split_at_share(steps, 0.2))
    categories, buckets, _ = item_side_features(split.vocabulary, events)
    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    mlflow.set_experiment("rtrec-test-models")
    for seed in args.seeds:
        config = TrainConfig(epochs=1, dim=16, max_len=settings.scoring.recent_items, seed=seed)
        trained = train_sasrec(split.train, categories, buckets, config)
        history = [i for i in (split.vocabulary.item(n) for n in split.histories[0]) if i]
        with mlflow.start_run(), tempfile.TemporaryDirectory() as tmp:
            version = log_recommender(
                trained.model,
                split.vocabulary,
                history,
                settings.mlflow.model_name,
                Path(tmp) / "model",
            )
        print(f"registered version {version}", flush=True)


if __name__ == "__main__":
    main()
