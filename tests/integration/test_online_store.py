"""The online store: Redis follows the features, neighbours and CF scores the Flink jobs
commit to Kafka."""

from __future__ import annotations

import json
import time

import pytest
from conftest import Stack, latest_records, latest_totals, latest_values, wait_for

from rtrec.features.definitions import (
    FEATURES,
    RECENT_ITEMS_GROUP,
    TOTALS_GROUP,
    WINDOW_END,
    WINDOW_START,
)
from rtrec.launch import app_job_command, flink_job_command, start_job
from rtrec.producer import produce
from rtrec.serving.online_store import CF_GROUP, NEIGHBOURS_GROUP, store_key
from rtrec.sources.simulator import Simulator

pytestmark = pytest.mark.integration

TIMEOUT_S = 180


def test_redis_holds_the_latest_committed_features_neighbours_and_scores(
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
        start_job("online cf", flink_job_command(settings, "online_cf", args), logs / "cf.log"),
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
        bootstrap, topics = settings.kafka.bootstrap_servers, settings.kafka.topics

        def synced() -> bool:
            """Redis ends with the last committed value of every key: recent items (item id ->
            when last touched), neighbour lists and CF scores."""
            recent = latest_records(bootstrap, topics.user_features, [RECENT_ITEMS_GROUP])
            if not recent:  # emitted as the watermark passes each event
                return False
            for (user, group), record in recent.items():
                held = client.hgetall(store_key("user", user, group))
                bounds = {WINDOW_START: record[WINDOW_START], WINDOW_END: record[WINDOW_END]}
                if {k: float(v) for k, v in held.items()} != record[FEATURES] | bounds:
                    return False
            for topic, entity, group, field in (
                (topics.item_neighbours, "item", NEIGHBOURS_GROUP, "neighbours"),
                (topics.cf_scores, "user", CF_GROUP, "scores"),
            ):
                latest = latest_values(bootstrap, topic)
                if not latest:
                    return False
                for key, value in latest.items():
                    text = client.get(store_key(entity, key.decode(), group))
                    if text is None or json.loads(text) != value[field]:
                        return False
            return True

        wait_for(synced, "Redis to hold recent items, neighbours and scores", jobs, TIMEOUT_S)
    finally:
        for job in jobs:
            job.stop()
        client.close()
