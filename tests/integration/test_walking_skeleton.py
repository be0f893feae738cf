"""Real events through every engine: simulator -> Kafka -> Flink (counts, dead letters) and
Spark (Delta bronze), plus an MLflow alias round trip. Issue #2's acceptance test."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from conftest import Stack, consume_all, latest_totals

from rtrec.config import Settings
from rtrec.features.user_counts import user_counts
from rtrec.launch import flink_job_command, run_to_completion, spark_job_command, start_job
from rtrec.producer import produce
from rtrec.sources import Duplicate, Event, Malformed
from rtrec.sources.simulator import Simulator

pytestmark = pytest.mark.integration

N_EVENTS = 20_000
N_MALFORMED = 200
N_DUPLICATES = 300
FLINK_TIMEOUT_S = 300


@dataclass(frozen=True)
class Produced:
    settings: Settings  # the stack's, with topics of this module's own
    set_args: list[str]  # the same, as --set arguments for the jobs
    events: list[Event]  # the valid events, duplicates included, in send order
    malformed: list[Malformed]


@pytest.fixture(scope="module")
def produced(stack: Stack) -> Produced:
    # Own topics, so events other tests put on the shared broker do not enter the counts.
    settings, set_args = stack.isolated("skeleton")
    simulator = Simulator(
        settings.simulator, events=N_EVENTS, duplicates=N_DUPLICATES, malformed=N_MALFORMED
    )
    records = list(simulator.stream())
    summary = produce(settings, records, source="test")
    assert (summary.valid, summary.duplicates, summary.malformed) == (
        N_EVENTS,
        N_DUPLICATES,
        N_MALFORMED,
    )
    events = [r.event if isinstance(r, Duplicate) else r for r in records]
    return Produced(
        settings=settings,
        set_args=set_args,
        events=[e for e in events if isinstance(e, dict)],
        malformed=[r for r in records if isinstance(r, Malformed)],
    )


def test_flink_counts_equal_the_produced_events_and_bad_ones_are_dead_lettered(
    produced: Produced, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = produced.settings
    topics = settings.kafka.topics
    expected = {
        user: {name: float(value) for name, value in counts.items()}
        for user, counts in user_counts(produced.events).items()
    }
    assert len(expected) > 100  # many users, so per-key equality is a real check

    log = tmp_path_factory.mktemp("logs") / "behaviour_features.log"
    job = start_job(
        "behaviour_features",
        flink_job_command(settings, "behaviour_features", produced.set_args),
        log,
    )
    try:
        deadline = time.monotonic() + FLINK_TIMEOUT_S
        got: dict[str, dict[str, float]] = {}
        while time.monotonic() < deadline and job.alive():
            got = latest_totals(settings.kafka.bootstrap_servers, topics.user_features)
            if got == expected:
                break
            time.sleep(5)
        assert job.alive(), f"the Flink job died:\n{job.tail()}"
        missing = set(expected) - set(got)
        wrong = [u for u in expected if u in got and got[u] != expected[u]]
        assert got == expected, f"{len(missing)} users missing, {len(wrong)} wrong: {wrong[:3]}"
    finally:
        job.stop()

    dead = [
        json.loads(m.value()) for m in consume_all(settings.kafka.bootstrap_servers, topics.dlq)
    ]
    assert sorted(d["raw"] for d in dead) == sorted(m.payload.decode() for m in produced.malformed)
    assert all(d["reason"] and d["source"] == "flink:behaviour_features" for d in dead)
    # Every defect kind the simulator planted was caught, each with its own kind of reason.
    assert len({m.defect for m in produced.malformed}) > 1
    assert len({d["reason"].split(":")[0] for d in dead}) > 1


def test_spark_ingest_lands_exactly_the_distinct_valid_event_ids(
    produced: Produced, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from deltalake import DeltaTable

    settings = produced.settings
    logs = tmp_path_factory.mktemp("logs")
    command = spark_job_command(
        settings, "ingest", [*produced.set_args, "--set", "lake.ingest_trigger=available_now"]
    )
    run_to_completion("ingest", command, logs / "ingest.log", timeout_s=300)

    bronze_path = settings.lake.table_path("bronze", "events")
    bronze = DeltaTable(bronze_path).to_pandas(columns=["event_id", "parse_error", "payload"])
    valid = bronze[bronze["parse_error"].isna()]
    assert set(valid["event_id"]) == {e["event_id"] for e in produced.events}
    assert len(bronze) == N_EVENTS + N_DUPLICATES + N_MALFORMED  # bronze keeps all, as received
    rejected = bronze[bronze["parse_error"].notna()]
    assert sorted(rejected["payload"]) == sorted(m.payload.decode() for m in produced.malformed)

    # Exactly once: a second run resumes from the checkpoint and lands nothing again.
    version = DeltaTable(bronze_path).version()
    run_to_completion("ingest again", command, logs / "ingest-again.log", timeout_s=300)
    assert len(DeltaTable(bronze_path).to_pandas(columns=["event_id"])) == len(bronze)
    assert DeltaTable(bronze_path).version() == version


def test_mlflow_register_alias_and_load_by_alias(produced: Produced) -> None:
    from rtrec.registry.mlflow_registry import (
        CHALLENGER,
        alias_version,
        load_by_alias,
        register_pyfunc,
        set_alias,
    )
    from rtrec.registry.popularity import ITEMS, K, most_popular, popularity_python_model

    settings = produced.settings
    ranking = most_popular(produced.events)
    first = register_pyfunc(
        settings, popularity_python_model(ranking), pd.DataFrame({K: [10]}), params={"n": 1}
    )
    second = register_pyfunc(
        settings, popularity_python_model(ranking[::-1]), pd.DataFrame({K: [10]}), params={"n": 2}
    )
    assert int(second.version) == int(first.version) + 1

    set_alias(settings, CHALLENGER, first.version)
    assert alias_version(settings, CHALLENGER) == first.version
    downloads = downloaded_models()
    top = load_by_alias(settings, CHALLENGER).predict(pd.DataFrame({K: [3]}))
    assert top[ITEMS].tolist() == [",".join(ranking[:3])]

    set_alias(settings, CHALLENGER, second.version)  # the alias moves; the name stays
    top = load_by_alias(settings, CHALLENGER).predict(pd.DataFrame({K: [3]}))
    assert top[ITEMS].tolist() == [",".join(ranking[::-1][:3])]
    # The loaded models predict from memory; their downloads are gone.
    assert downloaded_models() == downloads


def downloaded_models() -> set[Path]:
    """Model directories (an ``MLmodel`` file) directly under the system temp directory."""
    return {found.parent for found in Path(tempfile.gettempdir()).glob("*/MLmodel")}
