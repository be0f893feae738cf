"""The online store: Redis follows the features the Flink job commits to Kafka."""

from __future__ import annotations

import time

import pytest
from conftest import Stack, latest_totals

from rtrec.features.definitions import TOTALS_GROUP
from rtrec.launch import app_job_command, flink_job_command, start_job
from rtrec.producer import produce
from rtrec.serving.online_store import store_key
from rtrec.sources.simulator import Simulator

pytestmark = pytest.mark.integration

TIMEOUT_S = 180


def test_redis_holds_the_latest_committed_features(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import redis

    settings, args = stack.isolated("store")
    events = list(Simulator(settings.simulator, events=800, days=1).events())
    produce(settings, events, source="test")
    logs = tmp_path_factory.mktemp("store")
    jobs = [
        start_job(
            "features", flink_job_command(settings, "behaviour_features", args), logs / "f.log"
        ),
        start_job("online store", app_job_command(settings, "online_store", args), logs / "s.log"),
    ]
    client = redis.Redis.from_url(settings.redis.url, decode_responses=True)
    users = {e["user_id"] for e in events}
    try:
        deadline = time.monotonic() + TIMEOUT_S
        stored: dict[str, dict[str, float]] = {}
        while time.monotonic() < deadline:
            assert all(job.alive() for job in jobs), [job.tail() for job in jobs]
            kafka = latest_totals(
                settings.kafka.bootstrap_servers, settings.kafka.topics.user_features
            )
            stored = {
                user: {
                    k: float(v)
                    for k, v in client.hgetall(store_key("user", user, TOTALS_GROUP)).items()
                }
                for user in users
            }
            if set(kafka) == users and all(
                {k: stored[u].get(k) for k in kafka[u]} == kafka[u] for u in users
            ):
                break
            time.sleep(3)
        else:
            raise AssertionError("Redis did not catch up with the committed totals")
        assert sum(stored[u]["events"] for u in users) == len(events)
        # Window features arrive too, with their bounds.
        windows = client.keys(store_key("user", "*", "counts_1h"))
        assert windows
        assert {"start_ms", "end_ms", "events"} <= set(client.hgetall(windows[0]))
    finally:
        for job in jobs:
            job.stop()
        client.close()
