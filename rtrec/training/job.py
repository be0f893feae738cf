"""``jobs/spark/train.py``: train, evaluate and register, in one run.

Reads ``gold.user_sequences`` and ``gold.item_catalogue`` at their current Delta versions (time
travel pins them: the versions are logged), splits by time, trains SASRec with the configured
backend, evaluates it and the baselines with full ranking on the same split, and logs it all to
MLflow: parameters, metrics, the Delta versions, the git commit, a results table and a plot. The
model is registered as a new version (signature, input example, vocabulary); the gate in
``rtrec.registry.gate`` then decides whether it becomes ``challenger``, scoring the champion on
this run's split.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rtrec.batch.curate import ITEM_CATALOGUE, ITEMS, STEP_TYPES, TIMESTAMPS, USER_SEQUENCES
from rtrec.cf.params import cf_params
from rtrec.config import Settings
from rtrec.errors import RtrecError
from rtrec.models.vocabulary import FIRST_ITEM
from rtrec.registry.gate import GateDecision, Scored, gate
from rtrec.registry.mlflow_registry import (
    CHALLENGER,
    CHAMPION,
    GIT_COMMIT_TAG,
    git_commit,
    load_pyfunc,
)
from rtrec.schema.events import CATEGORY_ID, ITEM_ID, PRICE, USER_ID
from rtrec.training.data import Split, Step, item_side_features, split_at_share, time_split
from rtrec.training.loop import TrainConfig, TrainResult, train_sasrec
from rtrec.training.metrics import Evaluation, evaluate
from rtrec.training.quality import EXCLUDED, evaluate_all

JOB = "train"
LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainRun:
    run_id: str
    version: str
    decision: GateDecision
    results: dict[str, Evaluation]


def read_gold(
    spark: Any, settings: Settings
) -> tuple[dict[str, list[Step]], list[dict[str, Any]], dict[str, int]]:
    """The user steps and the catalogue at the tables' current versions, and those versions."""
    from rtrec.batch.delta import current_version

    versions: dict[str, int] = {}
    frames = {}
    for layer, table in (USER_SEQUENCES, ITEM_CATALOGUE):
        path = settings.lake.table_path(layer, table)
        version = current_version(spark, path, "curate")
        versions[f"{layer}.{table}"] = version
        frames[table] = spark.read.format("delta").option("versionAsOf", version).load(path)
    steps = {
        row[USER_ID]: [
            Step(int(t), str(i), str(e))
            for i, t, e in zip(row[ITEMS], row[TIMESTAMPS], row[STEP_TYPES], strict=True)
        ]
        for row in frames[USER_SEQUENCES[1]].collect()
    }
    catalogue = [
        row.asDict()
        for row in frames[ITEM_CATALOGUE[1]].select(ITEM_ID, CATEGORY_ID, PRICE).collect()
    ]
    return steps, catalogue, versions


def train_with_backend(
    spark: Any,
    settings: Settings,
    split: Split,
    categories: list[int],
    buckets: list[int],
    config: TrainConfig,
) -> TrainResult:
    from rtrec.training.distributed import train_with_horovod, train_with_torch_distributor

    training = settings.training
    if training.backend == "local":
        return train_sasrec(split.train, categories, buckets, config)
    if training.backend == "horovod":
        return train_with_horovod(split.train, categories, buckets, config, training.processes)
    local_mode = spark.sparkContext.master.startswith("local")
    return train_with_torch_distributor(
        split.train, categories, buckets, config, training.processes, local_mode, training.use_gpu
    )


def run_train_job(settings: Settings) -> TrainRun:
    import mlflow
    from mlflow import MlflowClient

    from rtrec.batch.session import create_spark_session
    from rtrec.registry.recommender import log_recommender

    spark = create_spark_session(settings, JOB)
    steps, catalogue, versions = read_gold(spark, settings)
    split = time_split(steps, split_at_share(steps, settings.training.test_share))
    if not split.targets:
        raise RtrecError("the split left no evaluation targets: more data or a larger test share")
    categories, buckets, _ = item_side_features(split.vocabulary, catalogue)
    config = TrainConfig(epochs=settings.training.epochs, max_len=settings.training.max_history)
    split_id = f"{'/'.join(f'{k}@{v}' for k, v in sorted(versions.items()))}/{split.split_ts}"

    started = time.perf_counter()
    trained = train_with_backend(spark, settings, split, categories, buckets, config)
    wall_s = time.perf_counter() - started
    results = evaluate_all(trained.model, split, steps, cf_params(settings.cf))

    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    mlflow.set_experiment("rtrec-training")
    tags = {GIT_COMMIT_TAG: git_commit(settings), "split": split_id}
    with mlflow.start_run(tags=tags) as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params(
            {
                **config.params(),
                "backend": settings.training.backend,
                "processes": settings.training.processes,
                "split_ts": split.split_ts,
                **{f"delta_version.{k}": v for k, v in versions.items()},
            }
        )
        mlflow.log_metrics(results["sasrec"].as_dict())
        for name, result in results.items():
            if name != "sasrec":
                mlflow.log_metrics(
                    {f"{name.replace(' ', '_')}.{k}": v for k, v in result.as_dict().items()}
                )
        mlflow.log_metrics(
            {
                "train_windows_per_s": trained.windows_per_second,
                "train_seconds": trained.seconds,
                "train_wall_seconds": wall_s,
            }
        )
        directory = Path(tmp)
        _log_results(results, directory)
        history = [split.vocabulary.item(i) for i in split.histories[0]]
        version = log_recommender(
            trained.model,
            split.vocabulary,
            [i for i in history if i is not None],
            settings.mlflow.model_name,
            directory / "model",
        )
        decision = gate(
            Scored(results["sasrec"].as_dict(), split_id),
            _champion_on_split(settings, split, split_id),
            force=settings.training.force,
        )
        mlflow.set_tags(
            {"gate": "passed" if decision.passed else "failed", "gate_reason": decision.reason}
        )
    client = MlflowClient(settings.mlflow.tracking_uri)
    if decision.passed:
        client.set_registered_model_alias(settings.mlflow.model_name, CHALLENGER, version)
    LOG.info("registered version %s; gate: %s", version, decision.reason)
    print(f"registered {settings.mlflow.model_name} version {version}; gate: {decision.reason}")
    return TrainRun(run.info.run_id, version, decision, results)


def _champion_on_split(settings: Settings, split: Split, split_id: str) -> Scored | None:
    """The champion's metrics on this run's split (None: no champion yet)."""
    from mlflow.exceptions import MlflowException

    uri = f"models:/{settings.mlflow.model_name}@{CHAMPION}"
    try:
        champion = load_pyfunc(uri)
    except MlflowException:
        return None
    python_model = champion.unwrap_python_model()
    # The champion ranks in its own vocabulary; map its scores onto this split's items (an item
    # it does not know cannot be recommended by it).
    theirs = python_model.scores(
        [[split.vocabulary.item(i) or "" for i in h] for h in split.histories]
    )
    mine = np.full((len(split.histories), len(split.vocabulary)), float("-inf"))
    for index, item in enumerate(split.vocabulary.items, start=FIRST_ITEM):
        their_index = python_model.vocabulary.index(item)
        if their_index >= FIRST_ITEM:
            mine[:, index] = theirs[:, their_index]
    result = evaluate(mine, np.array(split.targets), [set(h) for h in split.histories], EXCLUDED)
    return Scored(result.as_dict(), split_id)


def _log_results(results: dict[str, Evaluation], directory: Path) -> None:
    """The results table (markdown) and a bar plot of NDCG@10, as run artifacts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow

    columns = ("hr_at_10", "ndcg_at_10", "recall_at_20", "mrr_at_20", "coverage_at_10")
    lines = []
    for scope in ("all_targets", "new_targets"):
        lines += [f"### {scope.replace('_', ' ')}", "", "| model | " + " | ".join(columns) + " |"]
        lines.append("|---" * (len(columns) + 1) + "|")
        for name, result in results.items():
            metrics = getattr(result, scope)
            lines.append(
                f"| {name} | " + " | ".join(f"{getattr(metrics, c):.4f}" for c in columns) + " |"
            )
        lines.append("")
    table = directory / "results.md"
    table.write_text("\n".join(lines))
    mlflow.log_artifact(str(table))
    figure, axis = plt.subplots(figsize=(7, 3.5))
    names = list(results)
    width = 0.4
    for offset, scope in ((-width / 2, "all_targets"), (width / 2, "new_targets")):
        axis.bar(
            [n + offset for n in range(len(names))],
            [getattr(results[name], scope).ndcg_at_10 for name in names],
            width,
            label=scope.replace("_", " "),
        )
    axis.set_xticks(range(len(names)), names)
    axis.set_ylabel("NDCG@10")
    axis.legend()
    figure.tight_layout()
    plot = directory / "ndcg_at_10.png"
    figure.savefig(plot)
    plt.close(figure)
    mlflow.log_artifact(str(plot))
