"""Fusion weights of the scoring job, tuned offline on a time-based split of simulated events:
every source alone, then the grid's best weighted fusion (the job's own ``fuse``), full-ranking
metrics on all targets and on targets new to the user. Usage (the spark runtime, which has
torch):

    .venvs/spark/bin/python bench/fusion.py [--events 30000] [--users 1000] [--epochs 10]
        [--set key=value ...]

Prints the weights to put under ``scoring.weights``.
"""

from __future__ import annotations

import time

from cli import bench_parser

from rtrec.cf.params import cf_params
from rtrec.config import load_settings
from rtrec.sources.simulator import Simulator
from rtrec.training.data import item_side_features, split_at_share, time_split, user_steps
from rtrec.training.fusion import offline_sources, tune_weights
from rtrec.training.loop import TrainConfig, score_histories, train_sasrec

COLUMNS = ("hr_at_10", "ndcg_at_10", "recall_at_20", "mrr_at_20")


def main() -> None:
    parser = bench_parser(__doc__ or "", events=30_000)
    parser.set_defaults(users=1_000, days=30.0)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    settings = load_settings(args.env, [*args.overrides, f"simulator.users={args.users}"])
    events = list(Simulator(settings.simulator, events=args.events, days=args.days).events())
    steps = user_steps(events)
    split = time_split(steps, split_at_share(steps, settings.training.test_share))
    categories, buckets, _ = item_side_features(split.vocabulary, events)
    trained = train_sasrec(split.train, categories, buckets, TrainConfig(epochs=args.epochs))
    started = time.perf_counter()
    sources = offline_sources(
        split,
        steps,
        score_histories(trained.model, split.histories),
        categories,
        buckets,
        cf_params(settings.cf),
        settings.scoring.per_source,
    )
    tuned = tune_weights(sources, split)
    print(
        f"{len(split.targets):,} evaluation targets; {tuned.tried} weightings tried in"
        f" {time.perf_counter() - started:.0f} s"
    )
    for scope in ("all_targets", "new_targets"):
        print(f"\n{scope.replace('_', ' ')}:")
        print(f"{'source':<24}" + "".join(f"{c:>14}" for c in COLUMNS))
        rows = [(f"{s} alone", e) for s, e in tuned.alone.items()] + [("fused", tuned.fused)]
        for name, result in rows:
            metrics = getattr(result, scope)
            print(f"{name:<24}" + "".join(f"{getattr(metrics, c):>14.4f}" for c in COLUMNS))
    weights = ", ".join(f"{s}: {w:g}" for s, w in tuned.weights.items())
    print(f"\nscoring.weights: {{{weights}}}")


if __name__ == "__main__":
    main()
