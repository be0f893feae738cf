"""Hot-swap under flow: a champion promoted while events stream in at a steady rate reaches
every output within 10 s, without a restart, with no event lost or scored twice and no error
(real Kafka, the MLflow server and registry, the Flink scoring job)."""

from __future__ import annotations

import io
import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Stack, consume_all, wait_for

from rtrec.config import Settings
from rtrec.launch import flink_job_command, runtime_bin, start_job
from rtrec.producer import produce
from rtrec.registry.mlflow_registry import CHAMPION
from rtrec.registry.promotion import promote
from rtrec.schema.events import EVENT_ID, EVENT_TYPE
from rtrec.sources.simulator import Simulator
from rtrec.streaming.scoring import TRIGGERS

pytestmark = pytest.mark.integration

MODEL = "hot-swap-test"
RATE = 25  # events per second, in batches every 0.2 s
BEFORE_S, AFTER_S = 15.0, 25.0  # flow before and after the promotion
SWAP_BOUND_S = 10.0
SUPPORT = Path(__file__).parent / "support" / "register_sasrec.py"


def test_a_promotion_reaches_every_output_within_10_s_and_loses_nothing(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = tmp_path_factory.mktemp("hot-swap")
    settings, args = stack.isolated("hot-swap")
    args += ["--set", f"mlflow.model_name={MODEL}", "--set", "flink.consumer_group=hot-swap"]
    args += ["--set", f"flink.checkpoint_dir={base / 'checkpoints'}"]
    settings = settings.model_copy(
        update={"mlflow": settings.mlflow.model_copy(update={"model_name": MODEL})}
    )
    python = runtime_bin(settings, "spark", "python")
    registered = subprocess.run(
        [str(python), str(SUPPORT), "--seeds", "1", "2", *args],
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

    events = list(
        Simulator(settings.simulator, events=int(RATE * (BEFORE_S + AFTER_S)), days=1).events()
    )
    job = start_job("scoring", flink_job_command(settings, "scoring", args), base / "scoring.log")
    topic = settings.kafka.topics.recommendations
    try:
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
    finally:
        job.stop()

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
    logs = [p.read_text() for p in (base / "scoring.log.flink").glob("*.log")]
    assert logs and not any("failed to load" in log for log in logs)


def _outputs(settings: Settings, topic: str) -> list[dict[str, Any]]:
    """Every committed list on ``topic`` (the upsert topic keeps them all until compaction)."""
    messages = consume_all(settings.kafka.bootstrap_servers, topic)
    return [json.loads(m.value()) for m in messages if m.value()]
