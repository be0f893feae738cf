"""The scoring job live (real Kafka, the MLflow server and registry, Redis): hot-swap under
flow (a champion promoted while events stream in at a steady rate reaches every output within
10 s, without a restart, with no event lost or scored twice and no error); end to end, an event
sent to the API changes that user's list read through the API; and a job restored from its
checkpoint serves the versions it served before."""

from __future__ import annotations

import io
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Stack, consume_all, wait_for

from rtrec.config import Settings
from rtrec.launch import RunningJob, app_job_command, flink_job_command, runtime_bin, start_job
from rtrec.producer import produce
from rtrec.registry.mlflow_registry import CHAMPION
from rtrec.registry.promotion import promote
from rtrec.schema.events import EVENT_ID, EVENT_TS, EVENT_TYPE, ITEM_ID, USER_ID
from rtrec.sources.simulator import Simulator
from rtrec.streaming.scoring import TRIGGERS

pytestmark = pytest.mark.integration

MODEL = "hot-swap-test"
RATE = 25  # events per second, in batches every 0.2 s
BEFORE_S, AFTER_S = 15.0, 25.0  # flow before and after the promotion
SWAP_BOUND_S = 10.0
REGISTER = Path(__file__).parents[2] / "scripts" / "register_sasrec.py"


@dataclass(frozen=True)
class Scoring:
    settings: Settings
    args: list[str]
    versions: tuple[str, str]  # champion at start, the one to promote
    job: RunningJob
    sync: RunningJob
    checkpoints: Path  # the job's checkpoint directory


@pytest.fixture(scope="module")
def scoring(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scoring]:
    """Two registered SASRec versions, the first champion; the scoring job and the online-store
    sync running on topics of their own."""
    base = tmp_path_factory.mktemp("hot-swap")
    settings, args = stack.isolated("hot-swap")
    args += ["--set", f"mlflow.model_name={MODEL}", "--set", "flink.consumer_group=hot-swap"]
    args += ["--set", f"flink.checkpoint_dir={base / 'checkpoints'}"]
    settings = settings.model_copy(
        update={"mlflow": settings.mlflow.model_copy(update={"model_name": MODEL})}
    )
    python = runtime_bin(settings, "spark", "python")
    registered = subprocess.run(
        [str(python), str(REGISTER), "--seeds", "1", "2", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert registered.returncode == 0, registered.stderr[-3000:]
    old, new = (
        line.split()[-1]
        for line in registered.stdout.splitlines()
        if line.startswith("registered version ")
    )
    from mlflow import MlflowClient

    MlflowClient(settings.mlflow.tracking_uri).set_registered_model_alias(MODEL, CHAMPION, old)
    job = start_job("scoring", flink_job_command(settings, "scoring", args), base / "scoring.log")
    sync = start_job(
        "online_store", app_job_command(settings, "online_store", args), base / "sync.log"
    )
    try:
        yield Scoring(settings, args, (old, new), job, sync, base / "checkpoints")
    finally:
        job.stop()
        sync.stop()
    logs = [p.read_text() for p in (base / "scoring.log.flink").glob("*.log")]
    assert logs and not any("failed to load" in log for log in logs)


def test_a_promotion_reaches_every_output_within_10_s_and_loses_nothing(
    scoring: Scoring,
) -> None:
    settings, job, (old, new) = scoring.settings, scoring.job, scoring.versions
    events = list(
        Simulator(settings.simulator, events=int(RATE * (BEFORE_S + AFTER_S)), days=1).events()
    )
    topic = settings.kafka.topics.recommendations
    # The job is up and serving the old champion once a first event is answered.
    produce(settings, events[:1], source="test")
    wait_for(lambda: bool(_outputs(settings, topic)), "the first list", job, 240)

    sent_at: dict[str, float] = {}
    promoted_at: list[float] = []

    def flow() -> None:
        step = max(1, RATE // 5)
        started = time.monotonic()
        for start in range(1, len(events), step):
            due = started + (start - 1) / RATE
            time.sleep(max(0.0, due - time.monotonic()))
            batch = events[start : start + step]
            produce(settings, batch, source="test", out=io.StringIO())
            now = time.monotonic()
            for event in batch:
                sent_at[event[EVENT_ID]] = now
            if not promoted_at and now - started >= BEFORE_S:
                promote(settings, new)
                promoted_at.append(time.monotonic())

    sender = threading.Thread(target=flow)
    sender.start()
    sender.join()
    interactions = {e[EVENT_ID] for e in events if e[EVENT_TYPE] in TRIGGERS}

    def all_answered() -> bool:
        return interactions <= {r[EVENT_ID] for r in _outputs(settings, topic)}

    wait_for(all_answered, "a list for every interaction", job, 120)
    assert job.alive(), job.tail()

    records = [r for r in _outputs(settings, topic) if r[EVENT_ID] in interactions]
    answered = [r[EVENT_ID] for r in records]
    assert len(answered) == len(set(answered)) == len(interactions)  # none lost, none twice
    (promotion,) = promoted_at
    versions = {r[EVENT_ID]: r["model_version"] for r in records}
    before = [e for e, t in sent_at.items() if e in versions and t < promotion]
    assert before and all(versions[e] == old for e in before)
    late = [e for e, t in sent_at.items() if e in versions and t >= promotion + SWAP_BOUND_S]
    assert late and all(versions[e] == new for e in late)
    last_old = max((t for e, t in sent_at.items() if versions.get(e) == old), default=promotion)
    print(f"last event scored by the old version was sent {last_old - promotion:.1f} s after it")


def test_an_event_sent_to_the_api_changes_that_users_list_read_through_the_api(
    scoring: Scoring,
) -> None:
    """End to end: POST /v1/events -> Kafka -> the scoring job -> rtrec.recommendations -> the
    online-store sync -> Redis -> GET /v1/users/{id}/recommendations."""
    from fastapi.testclient import TestClient

    from rtrec.serving.api import create_app

    settings = scoring.settings
    template = Simulator(settings.simulator, events=1, days=1).events().__next__()
    headers = {"X-API-Key": "local-writer-key"}
    user = "e2e-shopper"
    with TestClient(create_app(settings)) as client:
        path = f"/v1/users/{user}/recommendations?k=5"
        assert client.get(path, headers=headers).status_code == 404  # a user never seen
        for n, item in enumerate((template[ITEM_ID], "brand-new-item")):
            event = {
                **template,
                EVENT_ID: f"e2e-{n}",
                USER_ID: user,
                ITEM_ID: item,
                EVENT_TYPE: "view",
                EVENT_TS: int(template[EVENT_TS]) + n,
            }
            sent = time.monotonic()
            assert client.post("/v1/events", json=event, headers=headers).status_code == 202
            answer: dict[str, Any] = {}

            def changed(event_id: str = event[EVENT_ID]) -> bool:
                nonlocal answer
                response = client.get(path, headers=headers)
                answer = response.json() if response.status_code == 200 else {}
                return answer.get(EVENT_ID) == event_id

            wait_for(changed, f"the list for {event[EVENT_ID]}", [scoring.job, scoring.sync], 60)
            took = time.monotonic() - sent
            print(f"{event[EVENT_ID]}: readable through the API {took:.2f} s after sending")
            assert len(answer["items"]) == 5 and all(i["reason"] for i in answer["items"])
            assert answer["model_version"] in scoring.versions
            if n == 0:  # a new shopper: what is trending in their context leads
                assert answer["items"][0]["reason"].startswith("trending in ")


def _outputs(settings: Settings, topic: str) -> list[dict[str, Any]]:
    """Every committed list on ``topic`` (the upsert topic keeps them all until compaction)."""
    messages = consume_all(settings.kafka.bootstrap_servers, topic)
    return [json.loads(m.value()) for m in messages if m.value()]


def test_a_restored_job_serves_the_version_it_served_before(
    scoring: Scoring, tmp_path: Path
) -> None:
    """The served versions live in the job's checkpointed state. A control record names the
    first version again while the registry's alias stays on the second; the job is stopped and
    restored from its latest checkpoint, and its first lists come from the first version, not
    from what the registry said at start."""
    from rtrec.registry.promotion import publish
    from rtrec.streaming.environment import latest_checkpoint

    settings, (old, new) = scoring.settings, scoring.versions
    topic = settings.kafka.topics.recommendations
    checkpoints = scoring.checkpoints
    events = iter(Simulator(settings.simulator, events=2_000, days=1, seed=11).events())

    def versions_of(batch: list[dict[str, Any]]) -> set[str]:
        """Send ``batch``; the versions of its interactions' lists, once all are there."""
        produce(settings, batch, source="test", out=io.StringIO())
        wanted = {e[EVENT_ID] for e in batch if e[EVENT_TYPE] in TRIGGERS}
        found: dict[str, str] = {}

        def answered() -> bool:
            for record in _outputs(settings, topic):
                if record[EVENT_ID] in wanted:
                    found[record[EVENT_ID]] = record["model_version"]
            return set(found) == wanted

        wait_for(answered, "lists for a batch", job, 120)
        return set(found.values())

    def batch() -> list[dict[str, Any]]:
        return [next(events) for _ in range(20)]

    from mlflow import MlflowClient

    registry = MlflowClient(settings.mlflow.tracking_uri)
    champion = registry.get_model_version_by_alias(MODEL, CHAMPION).version
    assert champion == new, "runs after the promotion test, which makes `new` champion"
    job = scoring.job
    publish(settings, old)  # a control record only: the registry's champion stays `new`
    wait_for(lambda: versions_of(batch()) == {old}, f"lists of version {old}", job, 60)
    # A checkpoint begun after the swap: the second to complete from now on.
    seen = latest_checkpoint(checkpoints)
    first: list[Path] = []

    def checkpointed() -> bool:
        latest = latest_checkpoint(checkpoints)
        if latest != seen and latest is not None and latest not in first:
            first.append(latest)
        return len(first) >= 2

    wait_for(checkpointed, "two more checkpoints", job, 60)
    job.stop()
    restored = start_job(
        "scoring (restored)",
        flink_job_command(
            settings, "scoring", [*scoring.args, "--set", "flink.restore_from=latest"]
        ),
        tmp_path / "restored.log",
    )
    job = restored
    try:
        assert registry.get_model_version_by_alias(MODEL, CHAMPION).version == new
        assert versions_of(batch()) == {old}
        assert versions_of(batch()) == {old}
    finally:
        restored.stop()
