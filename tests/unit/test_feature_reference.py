"""The plain-Python reference of the window features, on hand-checked examples."""

import pytest

from rtrec.features.definitions import (
    AFFINITY_GROUP,
    AFFINITY_HALF_LIFE_MS,
    ITEM_WINDOWS,
    MINUTE_MS,
    RECENT_CATEGORIES_GROUP,
    RECENT_EVENTS,
    RECENT_ITEMS_GROUP,
    SESSION_GAP_MS,
    USER_WINDOWS,
    HopWindow,
)
from rtrec.features.recent import recent_features
from rtrec.features.reference import (
    hop_starts,
    item_window_features,
    latest_per_user,
    recent_records,
    session_features,
    user_window_features,
)
from rtrec.schema import encode
from rtrec.schema.flink import interval
from rtrec.schema.wire import MAX_FUTURE_MS, parsed_row

pytestmark = pytest.mark.unit

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a whole day


def ev(
    n: int, user: str, kind: str, ts: int, item: str = "i1", category: str | None = None
) -> dict[str, object]:
    return {
        "event_id": f"e{n}",
        "user_id": user,
        "item_id": item,
        "event_type": kind,
        "event_ts": ts,
        "category_id": category,
    }


def test_recent_maps_keep_the_last_touch_and_decay_affinity_by_half_lives() -> None:
    h = AFFINITY_HALF_LIFE_MS
    groups = recent_features(
        items=["a", "b", "a", "c", "d"],
        categories=["shoes", "hats", "shoes", None, ""],
        event_types=["view", "add_to_cart", "purchase", "view", "remove_from_cart"],
        timestamps=[T0, T0 + h, T0 + 2 * h, T0 + 2 * h, T0 + 3 * h],
    )
    assert groups[RECENT_ITEMS_GROUP] == {
        "a": T0 + 2 * h, "b": T0 + h, "c": T0 + 2 * h, "d": T0 + 3 * h,
    }  # fmt: skip
    assert groups[RECENT_CATEGORIES_GROUP] == {"shoes": T0 + 2 * h, "hats": T0 + h}
    # Relative to the newest event (T0 + 3h): view 1 three half-lives back, purchase 5 one
    # back; add_to_cart 3 two back. remove_from_cart weighs nothing.
    assert groups[AFFINITY_GROUP] == {"shoes": 1 / 8 + 5 / 2, "hats": 3 / 4}


def test_recent_maps_do_not_depend_on_the_order_of_the_arrays() -> None:
    rows = [("a", "x", "view", T0 + 7), ("b", "y", "click", T0 + 3), ("c", "x", "purchase", T0)]
    forward = recent_features(*map(list, zip(*rows, strict=True)))
    backward = recent_features(*map(list, zip(*reversed(rows), strict=True)))
    assert forward == backward and forward[AFFINITY_GROUP]["x"] > 5


def test_recent_records_follow_each_event_over_the_last_events_only() -> None:
    events = [ev(n, "u", "view", T0 + n * 1000, item=f"i{n}", category="c") for n in range(25)]
    events.append(ev(99, "u", "impression", T0 + 99_000, item="shown"))  # not behaviour
    records = recent_records(events)
    assert len(records) == 25 * 3
    latest = latest_per_user(records)
    items = latest[("u", RECENT_ITEMS_GROUP)]
    # The last RECENT_EVENTS views, spanning the oldest to the newest of them.
    assert set(items.features) == {f"i{n}" for n in range(25 - RECENT_EVENTS, 25)}
    assert (items.window_start, items.window_end) == (T0 + (25 - RECENT_EVENTS) * 1000, T0 + 24_000)
    assert latest[("u", RECENT_CATEGORIES_GROUP)].features == {"c": T0 + 24_000}


def test_hop_starts_are_the_aligned_windows_containing_the_timestamp() -> None:
    ten_minutes = HopWindow("10m", 10 * MINUTE_MS, MINUTE_MS)
    starts = hop_starts(T0 + 90_000, ten_minutes)  # 00:01:30
    assert len(starts) == 10
    assert starts[0] == T0 - 8 * MINUTE_MS and starts[-1] == T0 + MINUTE_MS
    # A timestamp on a boundary belongs to the window starting there, not the one ending there.
    assert hop_starts(T0, ten_minutes)[-1] == T0
    assert [len(hop_starts(T0 + 1, w)) for w in USER_WINDOWS] == [10, 12, 24]


def test_user_windows_count_by_type() -> None:
    events = [ev(1, "u", "view", T0 + 1000), ev(2, "u", "purchase", T0 + 61_000)]
    records = {r.key: r for r in user_window_features(events) if r.group == "counts_10m"}
    both = records[("u", "counts_10m", T0)]
    assert both.window_end == T0 + 10 * MINUTE_MS
    assert both.features["events"] == 2 and both.features["purchase_count"] == 1
    # The window starting at 00:01 holds only the purchase; 11 windows hold at least one event.
    assert records[("u", "counts_10m", T0 + MINUTE_MS)].features == {
        **dict.fromkeys(both.features, 0.0),
        "events": 1.0,
        "purchase_count": 1.0,
    }
    assert len(records) == 11


def test_sessions_split_only_on_gaps_longer_than_the_limit() -> None:
    events = [
        ev(1, "u", "view", T0, "a"),
        ev(2, "u", "add_to_cart", T0 + SESSION_GAP_MS, "b"),  # exactly the gap: same session
        ev(3, "u", "purchase", T0 + 2 * SESSION_GAP_MS + 1, "b"),  # one ms more: a new one
    ]
    first, second = sorted(session_features(events), key=lambda r: r.window_start)
    assert (first.window_start, first.window_end) == (T0, T0 + 2 * SESSION_GAP_MS)
    assert first.features == {
        "events": 2.0,
        "length_ms": float(SESSION_GAP_MS),
        "distinct_items": 2.0,
        "carts": 1.0,
        "purchases": 0.0,
    }
    assert second.features["purchases"] == 1.0 and second.features["length_ms"] == 0.0


def test_item_conversion_and_trending() -> None:
    events = [
        ev(1, "u1", "view", T0 + 1),
        ev(2, "u2", "view", T0 + 2),
        ev(3, "u1", "add_to_cart", T0 + 3),
        ev(4, "u1", "purchase", T0 + 4),
    ]
    hour = ITEM_WINDOWS[0]
    record = next(r for r in item_window_features(events) if r.key == ("i1", hour.group, T0))
    assert record.features == {
        "views": 2.0,
        "carts": 1.0,
        "purchases": 1.0,
        "conversion": 0.5,
        "trending": 1 + 1 + 3 + 5,
    }


def test_an_event_far_ahead_of_its_arrival_is_rejected() -> None:
    event = ev(1, "u", "view", T0) | {"session_id": "s"}
    assert parsed_row(encode(event), received_ms=T0 - MAX_FUTURE_MS)[0] is None
    reason = parsed_row(encode(event), received_ms=T0 - MAX_FUTURE_MS - 1)[0]
    assert (
        reason
        == f"field 'event_ts' is {MAX_FUTURE_MS + 1} ms ahead of its arrival (max {MAX_FUTURE_MS})"
    )


def test_interval_literals_stay_within_flink_precision() -> None:
    assert interval(30 * MINUTE_MS) == "INTERVAL '30' MINUTE"
    assert interval(24 * 60 * MINUTE_MS) == "INTERVAL '24' HOUR"
    assert interval(MAX_FUTURE_MS) == "INTERVAL '1' HOUR"
    assert interval(5000) == "INTERVAL '5' SECOND"
    assert interval(2500) == "INTERVAL '2.500' SECOND"
