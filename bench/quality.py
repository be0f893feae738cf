"""Recommendation quality: the sequential model against the baselines, full ranking, on a
time-based split of simulated events (planted sequential pairs, segments, price sensitivity),
or of a public dataset replayed into the lake.

Prints one table: every metric on all targets and on targets new to the user, for SASRec,
popularity, recent popularity, item-KNN, ALS and the online CF's scores, plus training
examples/s. Usage (the spark runtime, which has torch):

    .venvs/spark/bin/python bench/quality.py [--events 60000] [--users 2000] [--days 30]
        [--test-share 0.2] [--epochs 30] [--set key=value ...]

With ``--format FMT --path FILE`` (a format of ``rtrec.sources.replay``: otto, taobao,
retailrocket, rees46, yoochoose, movielens) the file is loaded into ``bronze.events`` of a
scratch lake (``--lake DIR`` keeps it), curated into gold by the curate job, and the comparison
runs on ``gold.user_sequences`` and ``gold.item_catalogue``, as the train job reads them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from cli import bench_parser

from rtrec.cf.params import cf_params
from rtrec.config import Settings, load_settings
from rtrec.sources.simulator import Simulator
from rtrec.training.data import Step, user_steps
from rtrec.training.loop import TrainConfig
from rtrec.training.quality import compare

COLUMNS = ("hr_at_10", "ndcg_at_10", "recall_at_20", "mrr_at_20", "coverage_at_10")


def main() -> None:
    parser = bench_parser(__doc__ or "", events=60_000)
    parser.set_defaults(users=2_000, days=30.0)
    parser.add_argument("--test-share", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--loss", choices=["full", "sampled"], default="full")
    parser.add_argument("--format", help="a public dataset's format (with --path)")
    parser.add_argument("--path", type=Path, help="the dataset file (.gz too)")
    parser.add_argument("--lake", type=Path, help="lake root for --path (default: a scratch one)")
    args = parser.parse_args()
    if (args.format is None) != (args.path is None):
        parser.error("--format and --path go together")
    overrides = [*args.overrides, f"simulator.users={args.users}"]
    with tempfile.TemporaryDirectory(prefix="rtrec-quality-") as scratch:
        if args.path is None:
            settings = load_settings(args.env, overrides)
            events: Sequence[Mapping[str, Any]] = list(
                Simulator(settings.simulator, events=args.events, days=args.days).events()
            )
            steps, items = user_steps(events), events
            source = f"{len(events):,} simulated events, {args.users:,} users"
        else:
            lake = (args.lake or Path(scratch)).resolve()
            settings = load_settings(args.env, [*overrides, f"lake.root={lake}"])
            steps, items, source = from_lake(settings, args.format, args.path)
    config = TrainConfig(epochs=args.epochs, loss=args.loss)
    comparison = compare(steps, items, config, args.test_share, cf_params(settings.cf))
    split, trained = comparison.split, comparison.trained
    new = np.mean([t not in set(h) for t, h in zip(split.targets, split.histories, strict=True)])
    print(
        f"{source}; {len(split.vocabulary) - 2:,} items in the vocabulary;"
        f" {sum(map(len, split.train)):,} training steps, {len(split.targets):,} evaluation"
        f" targets ({new:.0%} new to the user; {split.unknown_targets} on items unknown to"
        " training left out)"
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


def from_lake(
    settings: Settings, fmt: str, path: Path
) -> tuple[dict[str, list[Step]], Sequence[Mapping[str, Any]], str]:
    """Load the dataset into the lake's bronze, curate it, and read gold as the train job does."""
    from rtrec.batch.curate import run_curate_job
    from rtrec.batch.load import load_dataset
    from rtrec.batch.session import create_spark_session
    from rtrec.training.job import read_gold

    spark = create_spark_session(settings, "quality")
    loaded = load_dataset(spark, settings, fmt, path)
    silver_version = run_curate_job(settings)
    steps, catalogue, versions = read_gold(spark, settings)
    pinned = ", ".join(f"{table}@{version}" for table, version in sorted(versions.items()))
    source = (
        f"{path.name} ({fmt}): {loaded.events:,} events and {loaded.bad_rows:,} bad rows loaded"
        f" into bronze@{loaded.version}, silver@{silver_version}, {pinned}; {len(steps):,} users"
    )
    return steps, catalogue, source


if __name__ == "__main__":
    main()
