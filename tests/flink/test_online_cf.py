"""The online CF job on a local mini-cluster at parallelism 2 ends where the pure core says."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from conftest import cf_payload

from rtrec.cf import CfEvent, CfParams, compute_reference
from rtrec.config import load_settings

pytestmark = [pytest.mark.component, pytest.mark.flink]


def _events(seed: int, count: int) -> list[CfEvent]:
    """Skewed traffic with impressions, re-sends and a few events later than the TTL."""
    rng = random.Random(seed)
    kinds = ("view", "view", "view", "click", "add_to_cart", "purchase", "impression")
    clocks = dict.fromkeys((f"u{n}" for n in range(25)), 1_700_000_000_000)
    events: list[CfEvent] = []
    for n in range(count):
        user = rng.choice(sorted(clocks))
        clocks[user] += rng.randrange(0, 600_000)
        late = rng.random() < 0.03
        ts = clocks[user] - (rng.randrange(0, 8 * 86_400_000) if late else 0)
        item = f"i{int(rng.paretovariate(1.3)) % 30}"
        events.append(CfEvent(f"e{n}", user, item, rng.choice(kinds), ts))
        if rng.random() < 0.03:
            events.append(events[rng.randrange(len(events))])  # a re-send
    return events


def test_job_output_equals_the_pure_core_at_quiescence(tmp_path: Path) -> None:
    from rtrec.streaming.kafka import raw_file_ddl
    from rtrec.streaming.online_cf import build_online_cf_pipeline, read_valid_events
    from rtrec.streaming.stream_env import create_stream_env

    settings = load_settings("local", [f"flink.checkpoint_dir={tmp_path / 'checkpoints'}"])
    assert settings.flink.parallelism == 2
    params = CfParams(history_size=10, neighbours=5, candidates=8)
    events = _events(3, 1500)
    reference = compute_reference(events, params)
    assert reference.capped == ()  # the caps are not reached, so equality is the contract
    assert len(reference.neighbours) > 20 and len(reference.scores) == 25

    (tmp_path / "events.txt").write_bytes(b"\n".join(cf_payload(e) for e in events) + b"\n")
    _, t_env = create_stream_env(settings, "rtrec-test-online-cf")
    t_env.execute_sql(raw_file_ddl("raw_file", tmp_path / "events.txt"))
    streams = build_online_cf_pipeline(
        read_valid_events(t_env, "raw_file"),
        params,
        flush_interval_ms=3_600_000,
        # As the job runs them; the fallback flushes change only when output appears.
        idle_flush_ms=settings.cf.idle_flush_ms,
        state_ttl_ms=settings.cf.state_ttl_ms,
    )
    outputs = streams.neighbours.map(lambda n: ("item", n.item, n.neighbours)).union(
        streams.scores.map(lambda s: ("user", s.user, s.scores))
    )
    latest: dict[tuple[str, str], Any] = {}
    with outputs.execute_and_collect() as results:
        for kind, key, ranked in results:  # upsert semantics: the last record per key holds
            latest[kind, key] = ranked

    neighbours = {k: v for (kind, k), v in latest.items() if kind == "item" and v}
    scores = {k: v for (kind, k), v in latest.items() if kind == "user" and v}
    for got, want in ((neighbours, reference.neighbours), (scores, reference.scores)):
        assert got.keys() == want.keys()
        for key, ranked in want.items():
            assert [k for k, _ in got[key]] == [k for k, _ in ranked], key
            assert [v for _, v in got[key]] == pytest.approx([v for _, v in ranked], rel=1e-9)


def test_valid_events_carry_their_event_time(tmp_path: Path) -> None:
    """The flush timers are set from each record's timestamp: ``read_valid_events`` must stamp
    the event time on every record (without it, Flink gives them Long.MIN_VALUE)."""
    from pyflink.common import Types
    from pyflink.datastream import ProcessFunction

    from rtrec.streaming.kafka import raw_file_ddl
    from rtrec.streaming.online_cf import read_valid_events
    from rtrec.streaming.stream_env import create_stream_env

    settings = load_settings("local", [f"flink.checkpoint_dir={tmp_path / 'checkpoints'}"])
    events = _events(7, 40)
    (tmp_path / "events.txt").write_bytes(b"\n".join(cf_payload(e) for e in events) + b"\n")
    _, t_env = create_stream_env(settings, "rtrec-test-event-time")
    t_env.execute_sql(raw_file_ddl("raw_file", tmp_path / "events.txt"))

    class Stamps(ProcessFunction):  # type: ignore[misc]
        def process_element(self, event: CfEvent, ctx: Any) -> Any:
            yield event.event_id, event.event_ts, ctx.timestamp()

    stamps = read_valid_events(t_env, "raw_file").process(
        Stamps(), Types.TUPLE([Types.STRING(), Types.LONG(), Types.LONG()])
    )
    with stamps.execute_and_collect() as results:
        seen = list(results)
    assert {event_id for event_id, _, _ in seen} == {e.event_id for e in events}
    assert all(stamp == event_ts for _, event_ts, stamp in seen)
