"""`rtrec submit` against local standalone clusters: a job submitted this way produces what the
same job produces in local mode.

Flink: a JobManager and a TaskManager started from the flink runtime's pip-installed Flink
(rtrec.local.flink_cluster). The same simulated events go to two topic sets; the features job
runs on one in local mode (its own mini-cluster) and is submitted detached (``flink run -d``) to
the cluster on the other. Both must upsert exactly the per-user totals computed from the events,
then the cluster's job is cancelled.

Spark: the session's standalone cluster (a master, two workers). ingest (available-now) and
curate are submitted to it with ``rtrec submit spark`` into one lake, and run in local mode with
``spark-submit --master local[2]`` into another; every table holds the same rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import Stack, latest_totals, wait_for
from test_spark_cluster import TABLES, lake_args, spark_submit_all, table_rows

from rtrec.batch.curate import SILVER_EVENTS
from rtrec.cli import main
from rtrec.config import load_settings
from rtrec.features.user_counts import user_counts
from rtrec.launch import flink_job_command, start_job
from rtrec.local.flink_cluster import FlinkCluster, start_flink_cluster
from rtrec.local.spark_cluster import SparkCluster
from rtrec.producer import produce
from rtrec.sources import Duplicate
from rtrec.sources.simulator import Simulator
from rtrec.streaming.behaviour_features import JOB_NAME

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

N_EVENTS, N_DUPLICATES, N_MALFORMED = 1500, 30, 20
FLINK_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def flink_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlinkCluster]:
    """A JobManager and one TaskManager (two slots) on loopback for this module; nothing of
    them may be left after (``stop`` raises otherwise)."""
    cluster = start_flink_cluster(load_settings("local"), tmp_path_factory.mktemp("flink-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


def simulated(stack: Stack) -> list[Any]:
    simulator = Simulator(
        stack.settings.simulator, events=N_EVENTS, duplicates=N_DUPLICATES, malformed=N_MALFORMED
    )
    return list(simulator.stream())


def running_job(cluster: FlinkCluster, name: str) -> dict[str, Any] | None:
    return next((j for j in cluster.jobs() if j["name"] == name and j["state"] == "RUNNING"), None)


def test_flink_job_submitted_to_a_standalone_cluster_matches_local_mode(
    stack: Stack, flink_cluster: FlinkCluster, tmp_path: Path
) -> None:
    records = simulated(stack)
    events = [r.event if isinstance(r, Duplicate) else r for r in records]
    expected = {
        user: {name: float(value) for name, value in counts.items()}
        for user, counts in user_counts(e for e in events if isinstance(e, dict)).items()
    }
    assert len(expected) > 100  # many users, so per-key equality is a real check
    modes = {}
    for mode in ("local", "cluster"):
        settings, args = stack.isolated(f"submit-{mode}")
        # Each job's own consumer group and transactional ids: the two must not fence each other.
        args += ["--set", f"flink.consumer_group=rtrec-submit-{mode}"]
        produce(settings, records, source="test")
        modes[mode] = (settings, args)

    local_settings, local_args = modes["local"]
    cluster_settings, cluster_args = modes["cluster"]
    local = start_job(
        "behaviour_features (local mode)",
        flink_job_command(local_settings, "behaviour_features", local_args),
        tmp_path / "local.log",
    )
    try:
        command = ["submit", "flink", "behaviour_features", *cluster_args]
        assert main([*command, "--jobmanager", flink_cluster.rest_address]) == 0
        # Detached: the client returned once the job was submitted, and the job runs on.
        job = running_job(flink_cluster, JOB_NAME)
        assert job is not None, flink_cluster.jobs()

        bootstrap = local_settings.kafka.bootstrap_servers
        totals: dict[str, dict[str, dict[str, float]]] = {}

        def both_complete() -> bool:
            assert running_job(flink_cluster, JOB_NAME) is not None, flink_cluster.log_tails()
            for mode, (settings, _) in modes.items():
                totals[mode] = latest_totals(bootstrap, settings.kafka.topics.user_features)
            return totals["local"] == expected and totals["cluster"] == expected

        wait_for(both_complete, "both jobs' totals to equal the events'", local, FLINK_TIMEOUT_S)
        assert totals["cluster"] == totals["local"]
        # The TaskManager's Python workers run the submitted package (--pyFiles), unpacked in
        # the cluster's scratch space.
        shipped = "python-dist-*/python-files/*/rtrec-*/rtrec/streaming/behaviour_features.py"
        assert list((flink_cluster.run_dir / "tmp").glob(shipped))
    finally:
        local.stop()
        for found in flink_cluster.jobs():
            if found["state"] == "RUNNING":
                flink_cluster.cancel(found["jid"])

    deadline = time.monotonic() + 60
    while any(j["state"] != "CANCELED" for j in flink_cluster.jobs()):
        assert time.monotonic() < deadline, flink_cluster.jobs()
        time.sleep(1)
    assert cluster_settings.kafka.topics.user_features != local_settings.kafka.topics.user_features


def test_spark_jobs_submitted_to_a_standalone_cluster_match_local_mode(
    stack: Stack, spark_cluster: SparkCluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings, args = stack.isolated("submit-spark")
    args += ["--set", "lake.ingest_trigger=available_now"]
    produce(settings, simulated(stack), source="test")
    local_base, cluster_base = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("cluster")
    jobs = ("ingest", "curate")

    with ThreadPoolExecutor(1) as pool:
        local_args = [*args, *lake_args(local_base)]
        local = pool.submit(spark_submit_all, settings, jobs, local_args, "local[2]", local_base)
        for job in jobs:
            command = ["submit", "spark", job, *args, *lake_args(cluster_base)]
            assert main([*command, "--master", spark_cluster.master_url]) == 0
        local.result()

    assert spark_cluster.completed_apps()[-2:] == [f"rtrec-{job}" for job in jobs]
    # The executors fetched the submitted package (--py-files) into their work directories.
    assert list(spark_cluster.run_dir.glob("worker-*/app-*/*/rtrec-*.zip"))
    for table in TABLES:
        local_rows = table_rows(local_base / "lake", table)
        cluster_rows = table_rows(cluster_base / "lake", table)
        assert local_rows, f"{table} is empty"
        assert local_rows == cluster_rows, f"{'.'.join(table)} differs"
    assert len(table_rows(cluster_base / "lake", SILVER_EVENTS)) == N_EVENTS
