"""The simulator: deterministic, exact counts, valid events, and its planted structure measurable
in what it emits (docs/sources.md)."""

from __future__ import annotations

import itertools
import random
import statistics
from collections import Counter, defaultdict

import pytest

from rtrec.config import load_settings
from rtrec.errors import RtrecError
from rtrec.schema import CATALOGUE_SCHEMA, encode, validate
from rtrec.sources import BadRow, Duplicate, Event, Malformed, Record, paced
from rtrec.sources.simulator import DEFECTS, Simulator, malformed_payload

pytestmark = pytest.mark.unit

SETTINGS = load_settings("local").simulator  # 500 users, 400 items, 12 categories, seed 7
N = 20_000


@pytest.fixture(scope="module")
def sim() -> Simulator:
    return Simulator(SETTINGS, events=N)


@pytest.fixture(scope="module")
def events(sim: Simulator) -> list[Event]:
    return list(sim.events())


def test_same_settings_give_the_same_catalogue_and_events(events: list[Event]) -> None:
    again = Simulator(SETTINGS, events=N)
    assert list(again.events()) == events
    assert again.catalogue == Simulator(SETTINGS, events=N).catalogue
    assert list(Simulator(SETTINGS, events=N, seed=8).events())[:50] != events[:50]


def test_valid_events_do_not_depend_on_duplicates_or_malformed(events: list[Event]) -> None:
    noisy = Simulator(SETTINGS, events=N, duplicates=300, malformed=200)
    assert [r for r in noisy.stream() if isinstance(r, dict)] == events


def test_counts_are_exact_and_extra(sim: Simulator, events: list[Event]) -> None:
    records = list(Simulator(SETTINGS, events=N, duplicates=150, malformed=200).stream())
    kinds = Counter(type(r).__name__ for r in records)
    assert kinds == {"dict": N, "Duplicate": 150, "Malformed": 200}
    assert len({e["event_id"] for e in events}) == N


def test_counts_default_to_the_shares_of_the_settings() -> None:
    settings = SETTINGS.model_copy(update={"duplicate_share": 0.02, "malformed_share": 0.01})
    simulator = Simulator(settings, events=1000)
    assert (simulator.n_duplicates, simulator.n_malformed) == (20, 10)
    assert Simulator(settings, events=1000, malformed=3).n_malformed == 3


def test_duplicates_are_exact_resends_of_an_earlier_event() -> None:
    seen: dict[str, Event] = {}
    duplicates = 0
    for record in Simulator(SETTINGS, events=5000, duplicates=100).stream():
        if isinstance(record, Duplicate):
            duplicates += 1
            assert seen[record.event["event_id"]] == record.event
            assert encode(seen[record.event["event_id"]]) == encode(record.event)
        else:
            assert isinstance(record, dict)
            seen[record["event_id"]] = dict(record)
    assert duplicates == 100


def test_every_event_is_valid_and_in_event_time_order(events: list[Event]) -> None:
    for event in events:
        result = validate(encode(event))
        assert result.ok, (result.error, event)
        assert result.record == event
    timestamps = [e["event_ts"] for e in events]
    assert timestamps == sorted(timestamps)
    assert timestamps[0] >= SETTINGS.start_ts_ms


def test_every_malformed_payload_fails_validation() -> None:
    records = Simulator(SETTINGS, events=2000, malformed=200).stream()
    malformed = [r for r in records if isinstance(r, Malformed)]
    assert len(malformed) == 200
    per_defect = Counter(m.defect for m in malformed)
    assert set(per_defect) == set(DEFECTS)
    assert max(per_defect.values()) - min(per_defect.values()) <= 1
    for m in malformed:
        assert not validate(m.payload).ok, (m.defect, m.payload)


def test_each_defect_fails_for_its_own_reason(events: list[Event]) -> None:
    reasons: dict[str, str] = {}
    for defect in DEFECTS:
        error = validate(malformed_payload(events[0], defect, random.Random(1))).error
        assert error is not None
        reasons[defect] = error
    assert len(set(reasons.values())) == len(DEFECTS), reasons
    assert "not valid JSON" in reasons["truncated_json"]
    assert "is missing" in reasons["missing_field"]
    assert "must be an integer" in reasons["wrong_type"]
    assert "not one of" in reasons["unknown_event_type"]
    assert "below the minimum" in reasons["negative_price"]
    assert "schema_version" in reasons["wrong_schema_version"]
    assert "expected a JSON object" in reasons["not_an_object"]


def test_no_duplicates_or_malformed_without_events() -> None:
    with pytest.raises(RtrecError):
        Simulator(SETTINGS, events=0, malformed=1)
    assert list(Simulator(SETTINGS, events=0).stream()) == []


def test_catalogue_records_are_valid(sim: Simulator) -> None:
    assert len(sim.catalogue) == SETTINGS.items
    for item in sim.catalogue:
        assert validate(encode(item, CATALOGUE_SCHEMA), CATALOGUE_SCHEMA).ok, item
    assert {i["category_id"] for i in sim.catalogue} == set(sim.categories)


def test_items_are_never_shown_before_they_exist(sim: Simulator, events: list[Event]) -> None:
    created = {i["item_id"]: i["created_ts"] for i in sim.catalogue}
    assert all(e["event_ts"] >= created[e["item_id"]] for e in events)
    new_items = {i for i, ts in created.items() if ts > SETTINGS.start_ts_ms}
    assert 0.2 < len(new_items) / len(created) < 0.4
    # New items do get traffic once they exist.
    assert len({e["item_id"] for e in events} & new_items) > 0.8 * len(new_items)


def test_a_then_b_pairs_make_b_very_likely_next(sim: Simulator, events: list[Event]) -> None:
    steps = defaultdict(list)  # a session's items in order; one view per item step
    for e in events:
        if e["event_type"] == "view":
            steps[e["session_id"]].append(e["item_id"])
    transitions = [(a, b) for items in steps.values() for a, b in itertools.pairwise(items)]
    after_a = [b == sim.pairs[a] for a, b in transitions if a in sim.pairs]
    p_b_given_a = sum(after_a) / len(after_a)
    next_counts = Counter(b for _, b in transitions)
    base_rate = statistics.fmean(next_counts[b] / len(transitions) for b in sim.pairs.values())
    assert len(after_a) > 100
    assert p_b_given_a > 0.45
    assert p_b_given_a > 50 * base_rate


def test_segments_prefer_their_categories(sim: Simulator, events: list[Event]) -> None:
    inside: dict[str, list[bool]] = defaultdict(list)
    for e in events:
        segment = sim.users[e["user_id"]]
        inside[segment.name].append(e["category_id"] in segment.categories)
    share = {name: statistics.fmean(flags) for name, flags in inside.items()}
    uniform = len(sim.segments[0].categories) / len(sim.categories)  # 0.25
    for name in ("bargain", "mainstream", "premium"):
        assert share[name] > 0.75 > uniform
    assert uniform < share["explorer"] < 0.65


def test_price_sensitivity_per_segment(sim: Simulator, events: list[Event]) -> None:
    by_category = defaultdict(list)
    for item in sim.catalogue:
        by_category[item["category_id"]].append(item["price"])
    median = {c: statistics.median(prices) for c, prices in by_category.items()}
    relative: dict[str, list[float]] = defaultdict(list)
    for e in events:
        if e["event_type"] in ("add_to_cart", "purchase"):
            relative[sim.users[e["user_id"]].name].append(e["price"] / median[e["category_id"]])
    bought = {name: statistics.median(values) for name, values in relative.items()}
    # Relative to the category median: bargain hunters buy cheap, premium shoppers dear.
    assert bought["bargain"] < 0.8 * bought["mainstream"]
    assert bought["premium"] > 1.3 * bought["mainstream"]


def test_time_of_day_and_device_context(events: list[Event]) -> None:
    hours = Counter(e["event_ts"] // 3_600_000 % 24 for e in events)
    assert sum(hours[h] for h in range(18, 23)) > 3 * sum(hours[h] for h in range(0, 5))
    devices: dict[str, Counter[str]] = defaultdict(Counter)
    for e in events:
        hour = e["event_ts"] // 3_600_000 % 24
        devices["evening" if hour >= 18 else "day" if hour >= 7 else "night"][e["device"]] += 1
    mobile = {part: c["mobile"] / sum(c.values()) for part, c in devices.items()}
    desktop_by_day = devices["day"]["desktop"] / sum(devices["day"].values())
    assert mobile["evening"] > 0.55 > desktop_by_day - 0.05 > mobile["day"]


def test_sessions_and_the_funnel(events: list[Event]) -> None:
    sessions: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        sessions[e["session_id"]].append(e)
    types = Counter(e["event_type"] for e in events)
    assert types["view"] > types["click"] > types["add_to_cart"] > types["purchase"] > 0
    assert types["remove_from_cart"] > 0
    assert 5 < N / len(sessions) < 15
    for session in sessions.values():
        assert len({(e["user_id"], e["device"], e["channel"], e["region"]) for e in session}) == 1
        seen: dict[str, set[str]] = defaultdict(set)
        for e in session:
            # Each step of the funnel follows the previous one for the same item.
            need = {"click": "view", "add_to_cart": "click", "purchase": "add_to_cart"}
            need["remove_from_cart"] = "add_to_cart"
            if e["event_type"] in need:
                assert need[e["event_type"]] in seen[e["item_id"]], session
            seen[e["item_id"]].add(e["event_type"])
            if e["event_type"] in ("add_to_cart", "purchase", "remove_from_cart"):
                assert e["quantity"] >= 1
        assert session[-1]["event_ts"] - session[0]["event_ts"] < 6 * 3_600_000


def test_paced_sleeps_by_scaled_event_time_deltas() -> None:
    now = [100.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    records: list[Record] = [
        {"event_ts": 1_000},
        BadRow(3, "x", "bad"),
        {"event_ts": 3_000},
        {"event_ts": 3_000},
        {"event_ts": 7_000},
    ]
    out = list(paced(records, 2.0, clock=lambda: now[0], sleep=sleep))
    assert out == records
    assert sleeps == [1.0, 2.0]  # (3000-1000)/2 ms, then the rest of (7000-1000)/2 ms
    sleeps.clear()
    assert list(paced(records, 0, clock=lambda: now[0], sleep=sleep)) == records
    assert sleeps == []
