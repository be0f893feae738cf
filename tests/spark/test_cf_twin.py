"""The Spark twin of online CF equals ``rtrec.cf.compute_reference`` on the same arrivals: out
of order, re-sent (just after and long after the original), malformed, from the future, late
by less and by more than the history TTL, and zero-weight. Values agree within a relative 1e-9
(sums in other orders), rankings exactly; and a small case is checked by hand."""

import logging
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest import Arrival, bronze_frame, partition_of, simulate

from rtrec.cf import CfEvent, CfParams, CfResult, Outcome, Ranked, UserState, apply_user_event
from rtrec.cf import compute_reference as reference
from rtrec.config import Settings, load_settings
from rtrec.schema import EVENT_SCHEMA, encode
from rtrec.schema.events import (
    CLICK,
    EVENT_ID,
    EVENT_TS,
    EVENT_TYPE,
    IMPRESSION,
    ITEM_ID,
    REMOVE_FROM_CART,
    USER_ID,
    VIEW,
)
from rtrec.schema.wire import parsed_row

pytestmark = [pytest.mark.component, pytest.mark.spark]

REL = 1e-9
HOUR_MS = 3_600_000
T0 = 1_767_225_600_000
# Small enough that histories fill and evict and lists are cut; the backfill test below runs
# the configured defaults.
PARAMS = CfParams(history_size=10, decay_ms=6 * HOUR_MS, neighbours=6, candidates=8)
PLANTED = 6  # users given each kind of hand-made arrival


def event_of(arrival: Arrival) -> dict[str, Any] | None:
    """The event as the stream parses it (with its arrival time); None if it is rejected."""
    error, *values = parsed_row(arrival.payload, arrival.kafka_ts)
    return None if error is not None else dict(zip(EVENT_SCHEMA.names, values, strict=True))


def appended(arrivals: list[Arrival], events: Iterable[dict[str, Any]]) -> list[Arrival]:
    """``arrivals``, then ``events`` after everything else on their users' partitions (the
    producer sends the event time as the Kafka timestamp)."""
    offsets = Counter({a.partition: a.offset + 1 for a in arrivals})
    out = list(arrivals)
    for event in events:
        partition = partition_of(event[USER_ID])
        out.append(Arrival(encode(event), partition, offsets[partition], event[EVENT_TS]))
        offsets[partition] += 1
    return out


def planted(arrivals: list[Arrival], params: CfParams) -> list[dict[str, Any]]:
    """For the busiest users: a re-send of their first event long after it, an impression, an
    event 1 ms inside the history TTL behind their clock (applied at the clock) and one exactly
    the TTL behind (late)."""
    by_user: dict[str, list[dict[str, Any]]] = {}
    for event in filter(None, map(event_of, arrivals)):
        by_user.setdefault(event[USER_ID], []).append(event)
    busiest = sorted(by_user, key=lambda user: (-len(by_user[user]), user))[:PLANTED]
    extra = []
    for n, user in enumerate(busiest):
        first, clock = by_user[user][0], max(e[EVENT_TS] for e in by_user[user])
        edge = clock - params.history_ttl_ms
        extra += [
            first,
            {**first, EVENT_ID: f"impression-{n}", EVENT_TYPE: IMPRESSION, EVENT_TS: clock},
            {**first, EVENT_ID: f"inside-ttl-{n}", ITEM_ID: f"revived-{n}", EVENT_TS: edge + 1},
            {**first, EVENT_ID: f"at-ttl-{n}", ITEM_ID: "never-applied", EVENT_TS: edge},
        ]
    return extra


def cf_events(arrivals: Iterable[Arrival]) -> list[CfEvent]:
    """Valid events in (partition, offset) order: each user's arrival order."""
    ordered = sorted(arrivals, key=lambda a: (a.partition, a.offset))
    return [
        CfEvent(e[EVENT_ID], e[USER_ID], e[ITEM_ID], e[EVENT_TYPE], e[EVENT_TS])
        for e in filter(None, map(event_of, ordered))
    ]


def outcomes(events: Iterable[CfEvent], params: CfParams) -> Counter[Outcome]:
    states: dict[str, UserState] = {}
    counts: Counter[Outcome] = Counter()
    for event in events:
        state, step = apply_user_event(states.get(event.user_id, UserState()), event, params)
        states[event.user_id] = state
        counts[step.outcome] += 1
    return counts


def ranked_rows(rows: Iterable[Any], key: str, column: str) -> dict[str, Ranked]:
    found: dict[str, Ranked] = {}
    for row in rows:
        assert row[key] not in found, f"{row[key]} twice"
        found[row[key]] = tuple((entry["item_id"], entry["score"]) for entry in row[column])
    return found


def assert_close(got: Mapping[Any, float], expected: Mapping[Any, float]) -> None:
    assert got.keys() == expected.keys()
    off = {k: (got[k], v) for k, v in expected.items() if not math.isclose(got[k], v, rel_tol=REL)}
    assert not off, f"{len(off)} values differ, e.g. {list(off.items())[:3]}"


def assert_same_rankings(got: Mapping[str, Ranked], expected: Mapping[str, Ranked]) -> None:
    """Same keys, same members in the same order, scores within ``REL``."""
    assert got.keys() == expected.keys()
    for key, ranked in expected.items():
        assert [m for m, _ in got[key]] == [m for m, _ in ranked], key
        assert_close(dict(got[key]), dict(ranked))


def twin_results(bronze: Any, params: CfParams) -> dict[str, Any]:
    from rtrec.cf.spark import COOCCURRENCE, NORM, PARTNER_ID, build_cf_tables

    tables = build_cf_tables(bronze, params)
    return {
        "neighbours": ranked_rows(tables.neighbours.collect(), ITEM_ID, "neighbours"),
        "scores": ranked_rows(tables.scores.collect(), USER_ID, "scores"),
        "norms": {r[ITEM_ID]: r[NORM] for r in tables.norms.collect()},
        "cooccurrence": {
            (r[ITEM_ID], r[PARTNER_ID]): r[COOCCURRENCE] for r in tables.cooccurrence.collect()
        },
        "capped": sorted(r[ITEM_ID] for r in tables.capped.collect()),
        "schemas": (tables.neighbours.schema, tables.scores.schema),
    }


def assert_equal_to_reference(twin: dict[str, Any], expected: CfResult) -> None:
    assert_close(twin["norms"], expected.norms)
    assert_close(
        twin["cooccurrence"],
        {(i, j): c for i, row in expected.cooccurrence.items() for j, c in row.items()},
    )
    assert_same_rankings(twin["neighbours"], expected.neighbours)
    assert_same_rankings(twin["scores"], expected.scores)
    assert twin["capped"] == list(expected.capped)


@pytest.fixture(scope="module")
def arrivals(spark_settings: Settings) -> list[Arrival]:
    """The features twin's traffic (1 500 events over two days, shuffled within 2 s, 40
    re-sends, 25 malformed, one from the future, 12 arriving after everything else) plus the
    planted arrivals."""
    traffic = simulate(spark_settings).arrivals
    return appended(traffic, planted(traffic, PARAMS))


def test_the_twin_equals_the_reference_on_simulated_traffic(
    spark: Any, arrivals: list[Arrival]
) -> None:
    events = cf_events(arrivals)
    expected = reference(events, PARAMS)
    twin = twin_results(bronze_frame(spark, arrivals), PARAMS)

    assert_equal_to_reference(twin, expected)
    # The traffic reaches every branch of stage 1 and gives rankings of every length.
    counts = outcomes(events, PARAMS)
    assert counts[Outcome.DUPLICATE] > PLANTED  # the simulator's re-sends and the planted ones
    assert counts[Outcome.LATE] == PLANTED
    assert counts[Outcome.ZERO_WEIGHT] > PLANTED
    assert len(expected.neighbours) > 200 and len(expected.scores) > 100
    assert {len(r) for r in expected.neighbours.values()} == set(range(1, PARAMS.neighbours + 1))
    assert max(len(r) for r in expected.scores.values()) == PARAMS.candidates
    # Applied at the clock, the revived items pair with the user's current history.
    assert all(f"revived-{n}" in expected.neighbours for n in range(PLANTED))
    assert "never-applied" not in expected.norms


def test_the_twin_writes_the_flink_jobs_record_columns(spark: Any, arrivals: list[Arrival]) -> None:
    from rtrec.cf.spark import build_cf_tables

    tables = build_cf_tables(bronze_frame(spark, arrivals[:50]), PARAMS)
    ranked = "array<struct<item_id:string,score:double>>"
    assert tables.neighbours.schema.simpleString() == f"struct<item_id:string,neighbours:{ranked}>"
    assert tables.scores.schema.simpleString() == f"struct<user_id:string,scores:{ranked}>"


def test_a_small_case_checked_by_hand(spark: Any) -> None:
    # H = 4, decay 1 s, TTL 10 s: k(dp, dt) = (1 - dp/4) * exp(-dt/1000) * (1 - dt/10000).
    # u1: view A @0, view B @1000 -> c(A,B) = k(1, 1000) = 0.75 * 0.9 / e = 0.248319; n(B) = 1
    # u2: click A @0 (w 2), view C @0 -> c(A,C) = 2 * k(1, 0) = 1.5; n(C) = 1
    # n(A) = 1 + 2^2 = 5, so sim(A,B) = 0.248319 / sqrt(5) = 0.111052 and
    # sim(A,C) = 1.5 / sqrt(5) = 0.670820.
    # u1's profile at 1000: a_A = exp(-1) = 0.367879, a_B = 1 -> C scores a_A sim(A,C) = 0.246782
    # u2's profile at 0:    a_A = 2, a_C = 1                  -> B scores 2 sim(A,B) = 0.222104
    # Ignored: u1's re-send of B, an impression, and a view 10 s behind u1's clock (late);
    # u3 has only zero-weight events, hence no state at all.
    params = CfParams(history_size=4, decay_ms=1000, history_ttl_ms=10_000)
    template = dict.fromkeys(EVENT_SCHEMA.names) | {"session_id": "s"}
    sends = [
        ("e1", "u1", "A", VIEW, 0),
        ("e2", "u1", "B", VIEW, 1000),
        ("e3", "u2", "A", CLICK, 0),
        ("e4", "u2", "C", VIEW, 0),
        ("e2", "u1", "B", VIEW, 1000),
        ("e5", "u1", "C", IMPRESSION, 1000),
        ("e6", "u1", "D", VIEW, 1000 - 10_000),
        ("e7", "u3", "A", IMPRESSION, 0),
        ("e8", "u3", "B", REMOVE_FROM_CART, 0),
    ]
    events = [
        template
        | dict(zip((EVENT_ID, USER_ID, ITEM_ID, EVENT_TYPE), s[:4], strict=True))
        | {EVENT_TS: T0 + s[4]}
        for s in sends
    ]
    twin = twin_results(bronze_frame(spark, appended([], events)), params)

    sim_ab = 0.75 * 0.9 / math.e / math.sqrt(5)
    sim_ac = 1.5 / math.sqrt(5)
    assert twin["neighbours"].keys() == {"A", "B", "C"}
    assert [m for m, _ in twin["neighbours"]["A"]] == ["C", "B"]
    assert_close(dict(twin["neighbours"]["A"]), {"C": sim_ac, "B": sim_ab})
    assert_close(dict(twin["neighbours"]["B"]), {"A": sim_ab})
    assert_close(dict(twin["neighbours"]["C"]), {"A": sim_ac})
    assert twin["scores"].keys() == {"u1", "u2"}
    assert_close(dict(twin["scores"]["u1"]), {"C": math.exp(-1) * sim_ac})
    assert_close(dict(twin["scores"]["u2"]), {"B": 2 * sim_ab})
    assert_close(twin["norms"], {"A": 5.0, "B": 1.0, "C": 1.0})
    assert_equal_to_reference(twin, reference(cf_events(appended([], events)), params))


def test_the_backfill_writes_gold_cf_tables_and_warns_about_capped_items(
    spark: Any, arrivals: list[Arrival], lake_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from rtrec.batch.backfill import (
        BRONZE_VERSION,
        CF_SCORES,
        ITEM_NEIGHBOURS,
        late_ledger,
        run_backfill_features_job,
    )
    from rtrec.batch.ingest import BRONZE_EVENTS

    # Few partners allowed: the busiest items go over, and the gold tables stay exact anyway.
    cf = ["cf.max_partners=4", "cf.neighbours=3", "cf.candidates=5"]
    settings = load_settings("local", [f"lake.root={lake_dir}", *cf])
    params = CfParams(max_partners=4, neighbours=3, candidates=5)
    small = [a for a in arrivals if a.offset < 300]
    bronze_frame(spark, small).write.format("delta").save(settings.lake.table_path(*BRONZE_EVENTS))

    def no_late(session: Any, _: Settings) -> Any:
        return session.createDataFrame([], "value BINARY").transform(late_ledger)

    with caplog.at_level(logging.WARNING, logger="rtrec.batch.backfill"):
        version = run_backfill_features_job(settings, no_late)

    expected = reference(cf_events(small), params)
    assert expected.capped
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"{len(expected.capped)} items" in w for w in warnings), warnings
    gold = {}
    for (layer, table), key, column in (
        (ITEM_NEIGHBOURS, ITEM_ID, "neighbours"),
        (CF_SCORES, USER_ID, "scores"),
    ):
        rows = spark.read.format("delta").load(settings.lake.table_path(layer, table)).collect()
        assert {row[BRONZE_VERSION] for row in rows} == {version}
        gold[column] = ranked_rows(rows, key, column)
    assert_same_rankings(gold["neighbours"], expected.neighbours)
    assert_same_rankings(gold["scores"], expected.scores)
