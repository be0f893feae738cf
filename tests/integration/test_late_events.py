"""Late events through real Kafka and the Flink features job: events that arrive behind the
watermark are routed to the late-events topic with their Kafka coordinates, never counted and
never silently dropped, while on-time traffic keeps flowing."""

from __future__ import annotations

import json

import pytest
from conftest import Stack, consume_all, latest_totals, wait_for

from rtrec.launch import flink_job_command, start_job
from rtrec.producer import produce
from rtrec.sources.simulator import Simulator

pytestmark = pytest.mark.integration

TIMEOUT_S = 180


def test_events_behind_the_watermark_go_to_the_late_topic(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings, set_args = stack.isolated("late")
    topics, bootstrap = settings.kafka.topics, settings.kafka.bootstrap_servers
    on_time = list(Simulator(settings.simulator, events=1000, days=1).events())
    produce(settings, on_time, source="test")
    expected_users = {e["user_id"] for e in on_time}

    log = tmp_path_factory.mktemp("logs") / "behaviour_features.log"
    job = start_job(
        "behaviour_features", flink_job_command(settings, "behaviour_features", set_args), log
    )
    try:
        wait_for(
            lambda: set(latest_totals(bootstrap, topics.user_features)) == expected_users,
            "the on-time events to be counted",
            job,
            TIMEOUT_S,
        )
        # The watermark now trails the newest event by the configured delay. Events an hour
        # older than the newest one, from users never seen, are far behind it.
        newest = max(e["event_ts"] for e in on_time)
        late = [
            {
                **e,
                "event_id": f"late-{n}",
                "user_id": f"late-user-{n}",
                "event_ts": newest - 3_600_000,
            }
            for n, e in enumerate(on_time[:20])
        ]
        fresh = [
            {
                **e,
                "event_id": f"fresh-{n}",
                "user_id": "fresh-user",
                "event_ts": newest + 60_000 + n,
            }
            for n, e in enumerate(on_time[:5])
        ]
        produce(settings, [*late, *fresh], source="test")
        wait_for(
            lambda: "fresh-user" in latest_totals(bootstrap, topics.user_features),
            "the fresh events to be counted",
            job,
            TIMEOUT_S,
        )
        routed = [json.loads(m.value()) for m in consume_all(bootstrap, topics.late_events)]
        assert len(routed) == len(late)
        assert sorted(json.loads(r["raw"])["event_id"] for r in routed) == sorted(
            e["event_id"] for e in late
        )
        assert all(r["reason"].startswith("late: event_ts") for r in routed)
        assert all(r["kafka_partition"] is not None and r["kafka_offset"] >= 0 for r in routed)
        totals = latest_totals(bootstrap, topics.user_features)
        assert not any(user.startswith("late-user") for user in totals)
        assert totals["fresh-user"]["events"] == len(fresh)
        assert not list(consume_all(bootstrap, topics.dlq, idle_s=1.0))
    finally:
        job.stop()
