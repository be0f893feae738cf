"""Online CF on a stream that goes quiet: event time then stops short of the next flush
boundary, and what the last events changed must still be published, by the wall-clock
fallback (``cf.idle_flush_ms``) rather than by the next shopper."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Lists, Stack, assert_same_rankings, latest_ranked, wait_for

from rtrec.cf import CfEvent, cf_params, compute_reference
from rtrec.cf.records import NEIGHBOURS, SCORES
from rtrec.launch import flink_job_command, start_job
from rtrec.producer import produce
from rtrec.schema.events import EVENT_ID, EVENT_TS, EVENT_TYPE, ITEM_ID, USER_ID
from rtrec.sources.simulator import Simulator

pytestmark = pytest.mark.integration

TIMEOUT_S = 180
MINUTE_MS = 60_000


def test_a_quiet_stream_still_publishes(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = tmp_path_factory.mktemp("cf-quiet")
    settings, args = stack.isolated("cf-quiet")
    args += ["--set", f"flink.checkpoint_dir={base / 'checkpoints'}"]
    args += ["--set", "flink.consumer_group=cf-quiet"]
    cf = settings.cf
    # The last events sit just after a flush boundary, so the watermark (behind them by the
    # out-of-orderness bound) stays short of the next one for as long as nothing else comes.
    assert settings.flink.watermark_delay_ms + 2_000 < cf.flush_interval_ms == MINUTE_MS
    assert cf.idle_flush_ms < TIMEOUT_S * 1000 / 4
    simulator = Simulator(settings.simulator, events=1, duplicates=0, malformed=0, days=1)
    template = next(r for r in simulator.stream() if isinstance(r, dict))
    boundary = (int(template[EVENT_TS]) // MINUTE_MS + 1) * MINUTE_MS

    def view(n: str, user: str, item: str, ts: int) -> dict[str, Any]:
        return {**template, EVENT_ID: f"quiet-{n}", USER_ID: user, ITEM_ID: item, EVENT_TS: ts}

    # u1 views a then b, u2 views a: b becomes a's neighbour and u2's candidate.
    events = [
        view("1", "u1", "a", boundary + 1_000),
        view("2", "u1", "b", boundary + 2_000),
        view("3", "u2", "a", boundary + 1_000),
    ]
    produce(settings, events, source="test")
    job = start_job(
        "online_cf", flink_job_command(settings, "online_cf", args), base / "online_cf.log"
    )
    topics = settings.kafka.topics
    want = compute_reference(
        [CfEvent(e[EVENT_ID], e[USER_ID], e[ITEM_ID], e[EVENT_TYPE], e[EVENT_TS]) for e in events],
        cf_params(cf),
    )
    published: list[tuple[Lists, Lists]] = []

    def settled() -> bool:
        # Neighbour lists are only ever written by a flush. The first flushes publish a's and
        # b's lists before b has heard a's new norm (u2's view), which a second flush of a's
        # row then carries to b: the published lists end equal to the reference only if every
        # flush ran.
        neighbours = latest_ranked(settings, topics.item_neighbours, NEIGHBOURS)
        scores = latest_ranked(settings, topics.cf_scores, SCORES)
        published.append((neighbours, scores))
        try:
            assert_same_rankings(neighbours, want.neighbours)
            assert_same_rankings(scores, want.scores)
        except AssertionError:
            return False
        return True

    try:
        wait_for(settled, "the published lists to equal the reference", job, TIMEOUT_S)
    finally:
        job.stop()
    assert published[-1][0].keys() == {"a", "b"}
