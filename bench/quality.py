"""Recommendation quality: the sequential model against the baselines, full ranking, on a
time-based split of simulated events (planted sequential pairs, segments, price sensitivity).

Prints one table: every metric on all targets and on targets new to the user, for SASRec,
popularity, recent popularity and item-KNN, plus training examples/s. Usage (the spark runtime,
which has torch):

    .venvs/spark/bin/python bench/quality.py [--events 60000] [--users 2000] [--days 30]
        [--test-share 0.2] [--epochs 30] [--set key=value ...]
"""

from __future__ import annotations

import numpy as np
from cli import bench_parser

from rtrec.config import load_settings
from rtrec.sources.simulator import Simulator
from rtrec.training.loop import TrainConfig
from rtrec.training.quality import compare

COLUMNS = ("hr_at_10", "ndcg_at_10", "recall_at_20", "mrr_at_20", "coverage_at_10")


def main() -> None:
    parser = bench_parser(__doc__ or "", events=60_000)
    parser.set_defaults(users=2_000, days=30.0)
    parser.add_argument("--test-share", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--loss", choices=["full", "sampled"], default="full")
    args = parser.parse_args()
    settings = load_settings(args.env, [*args.overrides, f"simulator.users={args.users}"])
    events = list(Simulator(settings.simulator, events=args.events, days=args.days).events())
    config = TrainConfig(epochs=args.epochs, loss=args.loss)
    comparison = compare(events, config, test_share=args.test_share)
    split, trained = comparison.split, comparison.trained
    new = np.mean([t not in set(h) for t, h in zip(split.targets, split.histories, strict=True)])
    print(
        f"{len(events):,} events, {args.users:,} users, {len(split.vocabulary) - 2:,} items in"
        f" the vocabulary; {sum(map(len, split.train)):,} training steps,"
        f" {len(split.targets):,} evaluation targets ({new:.0%} new to the user;"
        f" {split.unknown_targets} on items unknown to training left out)"
    )
    print(
        f"sasrec ({args.loss} softmax): {trained.windows_per_second:,.0f} training windows/s"
        f" (1 process, {trained.windows:,} windows in {trained.seconds:.1f} s), final loss"
        f" {trained.final_loss:.3f}; evaluation {comparison.evaluation_s:.2f} s"
    )
    for scope in ("all_targets", "new_targets"):
        print(f"\n{scope.replace('_', ' ')}:")
        print(f"{'model':<20}" + "".join(f"{c:>15}" for c in COLUMNS))
        for name, result in comparison.results.items():
            metrics = getattr(result, scope)
            print(f"{name:<20}" + "".join(f"{getattr(metrics, c):>15.4f}" for c in COLUMNS))


if __name__ == "__main__":
    main()
