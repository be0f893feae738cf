"""The notebooks executed by papermill, in the app runtime's kernel, against the session's real
stack with small parameters.

A module fixture fills topics of its own the way production does: simulated shoppers (with
re-sends and malformed payloads) go to Kafka; the ``behaviour_features`` Flink job dead-letters
the malformed ones and counts the online A/B metrics of events answering served lists; Spark
ingests, curates and trains twice (real MLflow runs with the baselines, two registered
versions: the first is promoted to champion, the second is challenger). Shoppers then answer
lists served by the arm the A/B split gives them (impressions, clicks, purchases carrying the
list's ``rec_id`` and model version). Each notebook must render every section with data and
report the numbers the test knows it sent. The executed notebooks stay in the test's tmp
directory.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Stack, wait_for

from rtrec.analysis import models
from rtrec.config import Settings, load_settings
from rtrec.launch import (
    flink_job_command,
    run_to_completion,
    runtime_bin,
    start_job,
)
from rtrec.producer import produce
from rtrec.registry.promotion import promote
from rtrec.schema.events import (
    ADD_TO_CART,
    CLICK,
    EVENT_ID,
    EVENT_TS,
    EVENT_TYPE,
    IMPRESSION,
    MODEL_VERSION,
    PURCHASE,
    REC_ID,
    SESSION_ID,
    USER_ID,
    VIEW,
)
from rtrec.scoring.ab import assign_arm, rec_id
from rtrec.sources import BadRow
from rtrec.sources.replay import replay
from rtrec.sources.simulator import Simulator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ROOT = Path(__file__).parents[2]
NOTEBOOKS = ROOT / "notebooks"
OTTO = ROOT.parent / "shared" / "data" / "otto-sample" / "sessions.jsonl"
MODEL = "notebooks-test"  # a model of its own: other tests register versions too
N_EVENTS, N_DUPLICATES, N_MALFORMED = 2000, 20, 20
SHOPPERS = 30  # users answering served lists
WINDOW_MS = 60_000  # scoring.ab.metrics_window_ms (base.yaml)
JOB_TIMEOUT_S = 400
# The jobs/spark ingest, curate and train functions in one Spark session (one JVM start instead
# of three: most of a small job's time), then train again: a second version, forced past the
# gate, so there are two versions and two runs to compare.
SPARK_PIPELINE = """
import sys
from rtrec.batch.curate import run_curate_job
from rtrec.batch.ingest import run_ingest_job
from rtrec.config import load_settings
from rtrec.training.job import run_train_job
settings = load_settings("local", sys.argv[1:])
run_ingest_job(settings)
run_curate_job(settings)
run_train_job(settings)
run_train_job(load_settings("local", [*sys.argv[1:], "training.force=true"]))
"""
BASELINES = {"popularity", "recent_popularity", "item-KNN", "ALS", "online_CF"}


@dataclass(frozen=True)
class Filled:
    settings: Settings
    overrides: list[str]  # what the notebooks get: the stack, this module's topics and model
    events: list[dict[str, Any]]  # every valid event sent, answers included
    champion: str
    challenger: str
    ab: dict[tuple[str, str], Counter[str]]  # (arm, version) -> event type -> count
    base: Path


def answers(
    settings: Settings, events: list[dict[str, Any]], versions: dict[str, str]
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], Counter[str]]]:
    """Events answering lists served after the simulated traffic: each shopper sees one list
    (an impression) from the version of their A/B arm, clicks on it for two in three shoppers,
    buys for one in five; they fall in two A/B windows. Then one view per user a few minutes
    later, so the event time of both partitions passes the windows and they close."""
    last = {event[USER_ID]: event for event in events}
    start = (max(e[EVENT_TS] for e in events) // WINDOW_MS + 2) * WINDOW_MS
    ab = settings.scoring.ab
    sent: list[dict[str, Any]] = []
    expected: dict[tuple[str, str], Counter[str]] = {}
    for n, user in enumerate(list(last)[:SHOPPERS]):
        arm = assign_arm(user, ab.challenger_share, ab.salt)
        served = {REC_ID: rec_id(user, f"nb-list-{n}"), MODEL_VERSION: versions[arm]}
        ts = start + (n % 2) * WINDOW_MS + n * 100
        kinds = [IMPRESSION] + [CLICK] * (n % 3 != 0) + [PURCHASE] * (n % 5 == 0)
        for step, kind in enumerate(kinds):
            event_id = f"nb-answer-{n}-{step}"
            sent.append(
                {**last[user], **served, EVENT_ID: event_id, EVENT_TYPE: kind, EVENT_TS: ts + step}
            )
            expected.setdefault((arm, versions[arm]), Counter())[kind] += 1
    closing = start + 10 * WINDOW_MS
    for n, event in enumerate(last.values()):
        sent.append({**event, EVENT_ID: f"nb-close-{n}", EVENT_TYPE: VIEW, EVENT_TS: closing + n})
    return sent, expected


@pytest.fixture(scope="module")
def filled(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Any:
    base = tmp_path_factory.mktemp("notebooks")
    _, args = stack.isolated("notebooks")
    extra = [
        f"mlflow.model_name={MODEL}",
        "scoring.ab.challenger_share=0.5",
        "flink.parallelism=1",
        "flink.consumer_group=notebooks",
        f"flink.checkpoint_dir={base / 'flink-checkpoints'}",
        "lake.ingest_trigger=available_now",
        f"lake.root={base / 'lake'}",
        f"lake.checkpoint_root={base / 'spark-checkpoints'}",
        "training.backend=local",
        "training.epochs=2",
    ]
    overrides = [*args[3::2], *extra]  # args: --env local, then --set pairs
    settings = load_settings("local", overrides)
    job_args = ["--env", "local", *(a for o in overrides for a in ("--set", o))]
    started = time.monotonic()

    simulator = Simulator(
        settings.simulator, events=N_EVENTS, duplicates=N_DUPLICATES, malformed=N_MALFORMED
    )
    produce(settings, simulator.stream(), source="test")
    events = list(Simulator(settings.simulator, events=N_EVENTS).events())
    features = start_job(
        "behaviour_features",
        flink_job_command(settings, "behaviour_features", job_args),
        base / "features.log",
    )
    python = str(runtime_bin(settings, "spark", "python"))
    try:
        run_to_completion(
            "spark pipeline",
            [python, "-c", SPARK_PIPELINE, *overrides],
            base / "spark.log",
            JOB_TIMEOUT_S,
        )
        print(f"trained at {time.monotonic() - started:.0f} s")
        log = (base / "spark.log").read_text()
        found = re.findall(rf"^registered {MODEL} version (\d+); gate: (.*)$", log, re.MULTILINE)
        assert [gate for _, gate in found] == ["no champion yet", "forced"], log[-3000:]
        (champion, _), (challenger, _) = found
        promote(settings, champion)

        sent, expected = answers(settings, events, {"champion": champion, "challenger": challenger})
        produce(settings, sent, source="test")

        def ab_closed() -> bool:
            summary = models.ab_summary(models.ab_windows(settings, timeout_s=10))
            counted = {
                (row["arm"], row["model_version"]): (row["impressions"], row["clicks"])
                for row in summary.to_dict("records")
            }
            wanted = {key: (c[IMPRESSION], c[CLICK]) for key, c in expected.items()}
            return counted == wanted

        wait_for(ab_closed, "the A/B windows", features, JOB_TIMEOUT_S)
        print(f"filled at {time.monotonic() - started:.0f} s")
        yield Filled(settings, overrides, [*events, *sent], champion, challenger, expected, base)
    finally:
        features.stop()


def execute(notebook: str, out: Path, parameters: dict[str, Any]) -> dict[str, Any]:
    """Run the notebook with papermill in the ``python3`` kernel (jupyter_client starts it with
    this interpreter: the app runtime's); returns the executed notebook, saved to ``out``."""
    import nbformat
    import papermill

    started = time.monotonic()
    papermill.execute_notebook(
        str(NOTEBOOKS / notebook),
        str(out),
        parameters=parameters,
        kernel_name="python3",
        cwd=str(NOTEBOOKS),
        progress_bar=False,
    )
    print(f"{notebook}: {time.monotonic() - started:.1f} s")
    return dict(nbformat.read(str(out), as_version=4))


def texts(book: dict[str, Any]) -> str:
    return "\n".join(
        output.get("text", "")
        for cell in book["cells"]
        for output in cell.get("outputs", [])
        if output["output_type"] == "stream"
    )


def figures(book: dict[str, Any]) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in book["cells"]
        for output in cell.get("outputs", [])
    )


def summary(book: dict[str, Any]) -> dict[str, Any]:
    (cell,) = [c for c in book["cells"] if "summary" in c["metadata"].get("tags", [])]
    (output,) = [o for o in cell["outputs"] if o["output_type"] == "stream"]
    result: dict[str, Any] = json.loads(output["text"])
    return result


def test_explore_events_reads_the_stream_and_its_dead_letters(filled: Filled) -> None:
    book = execute(
        "explore_events.ipynb",
        filled.base / "explore_events.ipynb",
        {"env": "local", "overrides": filled.overrides, "source": "kafka", "timeout_s": 60.0},
    )
    shown = texts(book)
    assert f"kernel: {Path(sys.executable)}" in shown  # the app runtime's interpreter
    assert "no data yet" not in shown
    assert figures(book) == 6  # mix, long tail, sessions, hours, funnel, dead-letter reasons
    found = summary(book)
    events = filled.events
    assert found["valid"] == len(events)
    assert found["duplicates"] == N_DUPLICATES
    assert found["malformed"] == N_MALFORMED
    assert found["dead_letters"] == N_MALFORMED  # every one routed by the Flink job
    assert found["messages"] == len(events) + N_DUPLICATES + N_MALFORMED
    types = Counter(e[EVENT_TYPE] for e in events)
    assert {k: v for k, v in found["event_types"].items() if v} == dict(types)
    assert found["sessions"] == len({e[SESSION_ID] for e in events})
    assert found["users"] == len({e[USER_ID] for e in events})
    reached = {
        stage: len({e[SESSION_ID] for e in events if e[EVENT_TYPE] == stage})
        for stage in (VIEW, CLICK, ADD_TO_CART, PURCHASE)
    }
    assert found["funnel_sessions"] == reached


def test_explore_events_replays_a_dataset_into_empty_topics(stack: Stack, filled: Filled) -> None:
    """``source=replay`` sends the OTTO sample first; with no streaming job on these topics, the
    dead-letter section says there is no data rather than failing."""
    settings, args = stack.isolated("notebooks-replay")
    records = list(replay("otto", OTTO))
    valid = [r for r in records if not isinstance(r, BadRow)]
    book = execute(
        "explore_events.ipynb",
        filled.base / "explore_events_replay.ipynb",
        {
            "overrides": args[3::2],
            "source": "replay",
            "replay_path": os.path.relpath(OTTO, settings.root),  # as a user would pass it
        },
    )
    found = summary(book)
    assert found["valid"] == found["messages"] == len(valid) > 0
    assert found["dead_letters"] == len(records) - len(valid)
    assert found["event_types"] == {
        kind: sum(e[EVENT_TYPE] == kind for e in valid) for kind in found["event_types"]
    }
    # OTTO logs clicks, carts and orders, no views: the funnel starts at clicks.
    assert list(found["funnel_sessions"]) == [CLICK, ADD_TO_CART, PURCHASE]
    clicked = {e[SESSION_ID] for e in valid if e[EVENT_TYPE] == CLICK}
    assert found["funnel_sessions"][CLICK] == len(clicked) > 0
    if found["dead_letters"] == 0:
        assert "no data yet: nothing on the dead-letter topic" in texts(book)


def test_compare_models_shows_quality_freshness_and_ab(filled: Filled) -> None:
    from mlflow import MlflowClient

    book = execute(
        "compare_models.ipynb",
        filled.base / "compare_models.ipynb",
        {"overrides": filled.overrides, "model_name": MODEL},
    )
    shown = texts(book)
    found = summary(book)
    assert found["versions"] == {filled.challenger: "challenger", filled.champion: "champion"}
    assert found["quality_runs"] == 2
    assert set(found["quality_models"]) == {"sasrec", *BASELINES}
    client = MlflowClient(filled.settings.mlflow.tracking_uri)
    run = client.get_run(client.get_model_version(MODEL, filled.challenger).run_id)
    assert found["quality"]["sasrec"] == pytest.approx(run.data.metrics["all_ndcg_at_10"])
    assert found["quality"]["ALS"] == pytest.approx(run.data.metrics["ALS.all_ndcg_at_10"])
    assert all(0 <= age < 1 for age in found["model_ages_h"])  # registered minutes ago
    ab = {(row["arm"], row["model_version"]): row for row in found["ab"]}
    assert ab.keys() == filled.ab.keys()
    for key, sent in filled.ab.items():
        row = ab[key]
        assert (row["impressions"], row["clicks"], row["purchases"]) == (
            sent[IMPRESSION],
            sent[CLICK],
            sent[PURCHASE],
        )
        assert math.isclose(row["ctr"], sent[CLICK] / sent[IMPRESSION])
        assert row["windows"] == 2
    # Quality, the two model ages and A/B; the lists' latency needs the scoring job, which this
    # test does not run, so that one part says it has no data.
    assert figures(book) == 4
    assert shown.count("no data yet") == 1
    assert "no data yet: no lists on the recommendations topic" in shown


def test_compare_models_says_no_data_yet_for_a_model_never_trained(
    stack: Stack, tmp_path: Path
) -> None:
    """Nothing registered, no runs, empty topics: every section says so, and the notebook
    still runs to its summary."""
    _, args = stack.isolated("notebooks-empty")
    book = execute(
        "compare_models.ipynb",
        tmp_path / "compare_models_empty.ipynb",
        {"overrides": args[3::2], "model_name": "notebooks-never-trained"},
    )
    shown = texts(book)
    assert shown.count("no data yet") == 5  # versions, quality, model and list freshness, A/B
    assert "no data yet: notebooks-never-trained has no registered version" in shown
    assert figures(book) == 0
    assert summary(book) == {
        "versions": {},
        "quality_runs": 0,
        "quality_models": [],
        "quality": {},
        "model_ages_h": [],
        "lists": 0,
        "ab": [],
    }
