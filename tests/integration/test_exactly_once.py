"""Exactly-once across a crash: the features job is killed (its whole mini-cluster, SIGKILL)
while events flow, restarted from its latest checkpoint, and its committed outputs equal those
of an uninterrupted run on the same events: nothing lost, nothing counted twice."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import Stack, consume_all, kill_while_sending, latest_totals, wait_for

from rtrec.config import Settings
from rtrec.features.definitions import ENTITY_ID, FEATURE_GROUP, TOTALS_GROUP, WINDOW_START
from rtrec.features.user_counts import user_counts
from rtrec.launch import flink_job_command, start_job
from rtrec.producer import produce
from rtrec.sources.simulator import Simulator
from rtrec.streaming.environment import latest_checkpoint

pytestmark = pytest.mark.integration

TIMEOUT_S = 240


def traffic(settings: Settings) -> list[dict[str, Any]]:
    """In-order events, every 25th re-sent right after itself: a re-send can then never be
    behind the watermark, so both runs take identical lateness decisions."""
    events: list[dict[str, Any]] = []
    for n, event in enumerate(Simulator(settings.simulator, events=4000, days=1).events()):
        events.append(event)
        if n % 25 == 0:
            events.append(dict(event))
    return events


def committed_windows(settings: Settings) -> Counter[tuple[str, str, int, str]]:
    """Every committed window record (not only the latest per key), counted."""
    seen: Counter[tuple[str, str, int, str]] = Counter()
    for topic in (settings.kafka.topics.user_features, settings.kafka.topics.item_features):
        for message in consume_all(settings.kafka.bootstrap_servers, topic):
            value = json.loads(message.value())
            if value[FEATURE_GROUP] != TOTALS_GROUP:
                features = json.dumps(value["features"], sort_keys=True)
                key = (value[ENTITY_ID], value[FEATURE_GROUP], value[WINDOW_START], features)
                seen[key] += 1
    return seen


def run(stack: Stack, name: str, events: list[dict[str, Any]], logs: Path, crash: bool) -> Settings:
    settings, args = stack.isolated(name)
    checkpoints = logs / f"{name}-checkpoints"
    args = [*args, "--set", f"flink.checkpoint_dir={checkpoints}"]
    expected = {u: float(c["events"]) for u, c in user_counts(events).items()}

    def counted() -> bool:
        totals = latest_totals(
            settings.kafka.bootstrap_servers, settings.kafka.topics.user_features
        )
        return {u: f["events"] for u, f in totals.items()} == expected

    half = len(events) // 2
    produce(settings, events[:half], source="test")
    command = flink_job_command(settings, "behaviour_features", args)
    job = start_job(name, command, logs / f"{name}.log")
    try:
        if crash:
            wait_for(
                lambda: latest_checkpoint(checkpoints) is not None, "a checkpoint", job, TIMEOUT_S
            )
            # The second half arrives over ~4 s; the job dies in the middle of it.
            kill_while_sending(settings, job, events[half:])
            restored = [*args, "--set", "flink.restore_from=latest"]
            command = flink_job_command(settings, "behaviour_features", restored)
            job = start_job(name, command, logs / f"{name}-restored.log")
        else:
            produce(settings, events[half:], source="test")
        wait_for(counted, "every event to be counted", job, TIMEOUT_S)
        time.sleep(3 * settings.flink.checkpoint_interval_ms / 1000)  # windows still committing
    finally:
        job.stop()
    return settings


def test_a_killed_and_restored_job_commits_what_an_uninterrupted_one_does(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    logs = tmp_path_factory.mktemp("exactly-once")
    events = traffic(stack.settings)
    reference = run(stack, "eo-reference", events, logs, crash=False)
    crashed = run(stack, "eo-crashed", events, logs, crash=True)

    assert (logs / "eo-crashed-restored.log").exists()
    totals = [
        latest_totals(s.kafka.bootstrap_servers, s.kafka.topics.user_features)
        for s in (reference, crashed)
    ]
    assert totals[0] == totals[1]
    windows = [committed_windows(s) for s in (reference, crashed)]
    assert windows[0] and max(windows[1].values()) == 1, "a window was committed twice"
    assert windows[0] == windows[1]
