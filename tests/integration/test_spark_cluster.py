"""The Spark jobs agree between local mode and a standalone cluster, and a trained model goes
through the gate, promotion and rollback against the MLflow server (the lakehouse/training
issue's acceptance).

The same simulated events (one Kafka topic) go through ingest -> curate -> train twice, each job
a real ``spark-submit``: once with ``--master local[2]`` into lake A, once with ``--master
spark://...`` (the session's cluster: a master and two one-core workers) into lake B. Bronze,
silver and gold must hold the same rows, and the two train runs (TorchDistributor with two
processes: on the driver in local mode, as barrier tasks on the executors in cluster mode) the
same metrics.

The train runs also drive the registry. The local run meets no champion, so it becomes
``challenger``; it is promoted. The cluster run then trains on the same data, which is the same
split (the gold tables are at the same Delta versions and the split time is the same), so the
gate scores it against that champion: an equal model does not beat it. A forced local run
(trained beside the cluster's) passes the gate and is promoted, and a rollback restores the
first champion; every move is a model_control record.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Stack, consume_all, wait_for

from rtrec.batch.curate import (
    BOUGHT_TOGETHER,
    ITEM_CATALOGUE,
    SILVER_EVENTS,
    TRAINING_EXAMPLES,
    USER_SEQUENCES,
)
from rtrec.batch.ingest import BRONZE_EVENTS, INGESTED_AT
from rtrec.cli import main
from rtrec.config import Settings
from rtrec.launch import run_to_completion, spark_job_command
from rtrec.local.spark_cluster import SparkCluster
from rtrec.producer import produce
from rtrec.registry.gate import GATE_METRIC
from rtrec.registry.mlflow_registry import CHALLENGER, CHAMPION
from rtrec.registry.promotion import PREVIOUS
from rtrec.sources.simulator import Simulator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

MODEL = "spark-cluster-test"  # a model of its own: other tests register versions too
N_EVENTS, N_DUPLICATES, N_MALFORMED = 4000, 40, 40
JOBS = ("ingest", "curate", "train")
JOB_TIMEOUT_S = 600
CONSUME_TIMEOUT_S = 30
TABLES = (
    BRONZE_EVENTS,
    SILVER_EVENTS,
    ITEM_CATALOGUE,
    USER_SEQUENCES,
    TRAINING_EXAMPLES,
    BOUGHT_TOGETHER,
)
# Figures of the run itself, not of the model: they differ between any two runs.
TIMINGS = {"train_windows_per_s", "train_seconds", "train_wall_seconds"}


@dataclass(frozen=True)
class Trained:
    """One train run as the registry holds it, and its directory (lake, checkpoints, logs)."""

    version: str
    run: Any  # mlflow.entities.Run
    base: Path

    @property
    def metrics(self) -> dict[str, float]:
        return {k: v for k, v in self.run.data.metrics.items() if k not in TIMINGS}

    @property
    def tags(self) -> dict[str, str]:
        return dict(self.run.data.tags)


@dataclass(frozen=True)
class Runs:
    settings: Settings  # the stack's, with this module's topics
    args: list[str]  # the same, as job and CLI arguments
    local: Trained  # the first: no champion yet
    cluster: Trained  # gated against the local one as champion
    forced: Trained  # local again, past the gate by training.force
    first_challenger: str  # the challenger after the local run
    cluster_apps: list[str]  # the applications the cluster ran


def spark_submit_all(
    settings: Settings, jobs: Sequence[str], args: Sequence[str], master: str, logs: Path
) -> None:
    """Run ``jobs`` one after the other with spark-submit, each logging to ``logs/<job>.log``."""
    for job in jobs:
        command = spark_job_command(settings, job, args, master)
        run_to_completion(f"{job} on {master}", command, logs / f"{job}.log", JOB_TIMEOUT_S)


def lake_args(base: Path) -> list[str]:
    return ["--set", f"lake.root={base / 'lake'}", "--set", f"lake.checkpoint_root={base / 'ck'}"]


def train(settings: Settings, args: Sequence[str], master: str, base: Path) -> Trained:
    """Run the train job; the version it registered, as its report line names it (two runs may
    register at the same time, so the newest version need not be this run's), with its run."""
    from mlflow import MlflowClient

    spark_submit_all(settings, ["train"], args, master, base)
    log = (base / "train.log").read_text()
    found = re.findall(rf"^registered {MODEL} version (\d+); gate: ", log, re.MULTILINE)
    assert len(found) == 1, f"no registered version in {base / 'train.log'}"
    client = MlflowClient(settings.mlflow.tracking_uri)
    version = client.get_model_version(MODEL, found[0])
    return Trained(found[0], client.get_run(version.run_id), base)


def alias(settings: Settings, name: str) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(settings.mlflow.tracking_uri)
    return str(client.get_model_version_by_alias(MODEL, name).version)


def table_rows(lake: Path, table: tuple[str, str]) -> list[str]:
    """The rows of a Delta table as sorted canonical JSON, without the ingestion time (the one
    column that records when a run happened rather than what it read)."""
    from deltalake import DeltaTable

    rows = DeltaTable(str(lake / table[0] / table[1])).to_pyarrow_table().to_pylist()
    return sorted(
        json.dumps({k: v for k, v in row.items() if k != INGESTED_AT}, sort_keys=True, default=str)
        for row in rows
    )


def control_records(settings: Settings, count: int) -> list[dict[str, Any]]:
    """The first ``count`` model_control records of this module's model. Read until they are
    there rather than until the topic is idle for a few seconds: the first consumer group on
    the broker waits for the group coordinator, which takes longer on a busy machine."""
    records = []
    topic = settings.kafka.topics.model_control
    messages = consume_all(settings.kafka.bootstrap_servers, topic, idle_s=CONSUME_TIMEOUT_S)
    with contextlib.closing(messages):
        for message in messages:
            if message.key() == MODEL.encode():
                records.append(json.loads(message.value()))
            if len(records) == count:
                break
    return records


@pytest.fixture(scope="module")
def runs(
    stack: Stack, spark_cluster: SparkCluster, tmp_path_factory: pytest.TempPathFactory
) -> Runs:
    settings, args = stack.isolated("cluster")
    args += ["--set", f"mlflow.model_name={MODEL}", "--set", "training.epochs=3"]
    args += ["--set", "lake.ingest_trigger=available_now"]
    simulator = Simulator(
        settings.simulator, events=N_EVENTS, duplicates=N_DUPLICATES, malformed=N_MALFORMED
    )
    produce(settings, simulator.stream(), source="test")
    local_base, cluster_base = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("cluster")
    local_args = [*args, *lake_args(local_base)]
    cluster_args = [*args, *lake_args(cluster_base)]
    cluster_url = spark_cluster.master_url

    # Side by side wherever the order allows (the jobs spend much of their time starting
    # processes): the local pipeline beside the cluster's ingest and curate; then, once the local
    # model is champion, the cluster's train (gated against it) beside a forced local train.
    with ThreadPoolExecutor(1) as pool:
        lake_jobs = ("ingest", "curate")
        cluster_lake = pool.submit(
            spark_submit_all, settings, lake_jobs, cluster_args, cluster_url, cluster_base
        )
        spark_submit_all(settings, lake_jobs, local_args, "local[2]", local_base)
        local = train(settings, local_args, "local[2]", local_base)
        assert main(["models", "promote", local.version, *args]) == 0
        first_challenger = alias(settings, CHALLENGER)
        cluster_lake.result()
        cluster_train = pool.submit(train, settings, cluster_args, cluster_url, cluster_base)
        forced_args = [*local_args, "--set", "training.force=true"]
        forced = train(settings, forced_args, "local[2]", local_base / "forced")
        cluster = cluster_train.result()
    apps = spark_cluster.completed_apps()
    return Runs(settings, args, local, cluster, forced, first_challenger, apps)


def test_jobs_ran_in_their_mode(runs: Runs) -> None:
    assert runs.cluster_apps[-3:] == [f"rtrec-{job}" for job in JOBS]
    # TorchDistributor's own report of where the ranks ran.
    assert "Started local training with 2 processes" in (runs.local.base / "train.log").read_text()
    cluster_log = (runs.cluster.base / "train.log").read_text()
    assert "Started distributed training with 2 executor processes" in cluster_log


def test_local_and_cluster_lakes_hold_the_same_rows(runs: Runs) -> None:
    for table in TABLES:
        local = table_rows(runs.local.base / "lake", table)
        cluster = table_rows(runs.cluster.base / "lake", table)
        assert local, f"{table} is empty"
        assert local == cluster, f"{'.'.join(table)}: {len(set(local) ^ set(cluster))} rows differ"
    bronze = table_rows(runs.local.base / "lake", BRONZE_EVENTS)
    assert len(bronze) == N_EVENTS + N_DUPLICATES + N_MALFORMED
    assert len(table_rows(runs.local.base / "lake", SILVER_EVENTS)) == N_EVENTS


def test_local_and_cluster_training_agree(runs: Runs) -> None:
    local, cluster = runs.local, runs.cluster
    assert local.run.data.params == cluster.run.data.params  # config, split, Delta versions
    assert local.tags["split"] == cluster.tags["split"]
    assert local.metrics.keys() == cluster.metrics.keys()
    assert local.metrics[GATE_METRIC] > 0
    # No tolerance: both modes run the same two ranks on the same batches from the same seed,
    # one thread each (torchrun and PySpark both set OMP_NUM_THREADS=1), and a two-rank
    # all-reduce sums in the same order, so the weights and every metric are bit-identical.
    assert cluster.metrics == local.metrics


def test_gate_promote_and_rollback_round_trip(runs: Runs) -> None:
    settings, first, gated, forced = runs.settings, runs.local, runs.cluster, runs.forced
    assert (first.tags["gate"], first.tags["gate_reason"]) == ("passed", "no champion yet")
    assert runs.first_challenger == first.version

    # The cluster run was gated against the local one, by then champion, on the same split: it
    # passes only by beating the champion's NDCG@10, which an equal model does not.
    new, old = gated.metrics[GATE_METRIC], first.metrics[GATE_METRIC]
    assert gated.tags["split"] == first.tags["split"]
    assert (gated.tags["gate"] == "passed") == (new > old)
    assert gated.tags["gate"] == "failed"
    assert gated.tags["gate_reason"] == (
        f"{GATE_METRIC} {new:.4f} does not beat the champion's {old:.4f}"
    )
    assert (forced.tags["gate"], forced.tags["gate_reason"]) == ("passed", "forced")
    # The forced run's is the only challenger move since the first: the failed gate made none.
    assert alias(settings, CHALLENGER) == forced.version

    assert main(["models", "promote", forced.version, *runs.args]) == 0
    assert (alias(settings, CHAMPION), alias(settings, PREVIOUS)) == (
        forced.version,
        first.version,
    )
    assert main(["models", "rollback", *runs.args]) == 0
    assert (alias(settings, CHAMPION), alias(settings, PREVIOUS)) == (
        first.version,
        forced.version,
    )

    moves = [first.version, forced.version, first.version]
    records = control_records(settings, len(moves))
    assert [(r["model"], r["alias"], r["version"], r["uri"]) for r in records] == [
        (MODEL, CHAMPION, v, f"models:/{MODEL}/{v}") for v in moves
    ]
    assert [r["ts"] for r in records] == sorted(r["ts"] for r in records)


def test_bought_together_is_published_to_the_api(runs: Runs, tmp_path: Path) -> None:
    """gold.bought_together -> the publish job (spark-submit) -> Kafka -> the online-store sync
    (its own process) -> Redis -> ``GET /v1/items/{id}/bought-together``, list for list."""
    from deltalake import DeltaTable
    from fastapi.testclient import TestClient

    from rtrec.batch.curate import RELATED
    from rtrec.launch import app_job_command, start_job
    from rtrec.schema.events import ITEM_ID
    from rtrec.serving.api import create_app

    settings = runs.settings
    local_args = [*runs.args, *lake_args(runs.local.base)]
    spark_submit_all(settings, ["publish_bought_together"], local_args, "local[2]", tmp_path)
    table = DeltaTable(str(runs.local.base / "lake" / BOUGHT_TOGETHER[0] / BOUGHT_TOGETHER[1]))
    expected = {row[ITEM_ID]: row[RELATED] for row in table.to_pyarrow_table().to_pylist()}
    report = (tmp_path / "publish_bought_together.log").read_text()
    assert f"published {len(expected)} items" in report
    # The item with the longest list, and the one with the shortest.
    chosen = sorted(expected, key=lambda item: (len(expected[item]), item))
    probes = {chosen[0], chosen[-1]}
    sync = start_job(
        "online store", app_job_command(settings, "online_store", runs.args), tmp_path / "s.log"
    )
    headers = {"X-API-Key": "local-reader-key"}
    try:
        with TestClient(create_app(settings)) as client:

            def answer(item: str) -> Any:
                path = f"/v1/items/{item}/bought-together?k={settings.serving.max_k}"
                return client.get(path, headers=headers)

            wait_for(
                lambda: all(answer(item).status_code == 200 for item in probes),
                "bought-together lists in the online store",
                sync,
                60,
            )
            for item in probes:
                assert answer(item).json() == {"item_id": item, "items": expected[item]}
            assert answer("no-such-item").status_code == 404
    finally:
        sync.stop()
