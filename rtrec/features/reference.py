"""Plain-Python reference of the window features: the definition the Flink job and the Spark
twin are tested against. Input: accepted events (valid, first occurrence, not late)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rtrec.features.definitions import (
    CARTS,
    CONVERSION,
    DISTINCT_ITEMS,
    EVENTS,
    INTENT_WEIGHTS,
    ITEM_WINDOWS,
    NOT_RECENT,
    PURCHASES,
    RECENT_EVENTS,
    SESSION_GAP_MS,
    SESSION_GROUP,
    SESSION_LENGTH_MS,
    TRENDING,
    USER_COUNT_FEATURES,
    USER_WINDOWS,
    VIEWS,
    HopWindow,
    type_count,
)
from rtrec.features.recent import recent_features
from rtrec.schema.events import (
    ADD_TO_CART,
    CATEGORY_ID,
    EVENT_ID,
    EVENT_TS,
    EVENT_TYPE,
    ITEM_ID,
    PURCHASE,
    USER_ID,
    VIEW,
)

Event = Mapping[str, Any]


@dataclass(frozen=True)
class FeatureRecord:
    entity_id: str
    group: str
    window_start: int
    window_end: int
    features: dict[str, float]

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.entity_id, self.group, self.window_start)


def hop_starts(ts: int, window: HopWindow) -> range:
    """Starts of the epoch-aligned sliding windows that contain ``ts``."""
    last = ts - ts % window.slide_ms
    first = last - window.size_ms + window.slide_ms
    return range(first, last + 1, window.slide_ms)


def _by_window(
    events: Iterable[Event], key: str, window: HopWindow
) -> dict[tuple[str, int], list[Event]]:
    grouped: dict[tuple[str, int], list[Event]] = defaultdict(list)
    for event in events:
        for start in hop_starts(event[EVENT_TS], window):
            grouped[(event[key], start)].append(event)
    return grouped


def user_window_features(events: Iterable[Event]) -> list[FeatureRecord]:
    events = list(events)
    records = []
    for window in USER_WINDOWS:
        for (user, start), members in _by_window(events, USER_ID, window).items():
            counts = dict.fromkeys(USER_COUNT_FEATURES, 0.0)
            for event in members:
                counts[EVENTS] += 1
                counts[type_count(event[EVENT_TYPE])] += 1
            records.append(FeatureRecord(user, window.group, start, start + window.size_ms, counts))
    return records


def item_window_features(events: Iterable[Event]) -> list[FeatureRecord]:
    events = list(events)
    records = []
    for window in ITEM_WINDOWS:
        for (item, start), members in _by_window(events, ITEM_ID, window).items():
            kinds = [event[EVENT_TYPE] for event in members]
            views = float(kinds.count(VIEW))
            purchases = float(kinds.count(PURCHASE))
            features = {
                VIEWS: views,
                CARTS: float(kinds.count(ADD_TO_CART)),
                PURCHASES: purchases,
                CONVERSION: purchases / views if views else 0.0,
                TRENDING: sum(INTENT_WEIGHTS.get(kind, 0.0) for kind in kinds),
            }
            records.append(
                FeatureRecord(item, window.group, start, start + window.size_ms, features)
            )
    return records


def recent_records(events: Iterable[Event]) -> list[FeatureRecord]:
    """The recent-behaviour groups as of every event (except ``NOT_RECENT`` types), over the
    user's last ``RECENT_EVENTS`` such events in (event time, event id) order; the record spans
    the oldest to the newest of them. Keyed by window start, so compare one user at a time or
    the latest record per user (``latest_per_user``)."""
    per_user: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        if event[EVENT_TYPE] not in NOT_RECENT:
            per_user[event[USER_ID]].append(event)
    records: list[FeatureRecord] = []
    for user, user_events in per_user.items():
        user_events.sort(key=lambda e: (e[EVENT_TS], e[EVENT_ID]))
        for n in range(len(user_events)):
            last = user_events[max(0, n + 1 - RECENT_EVENTS) : n + 1]
            groups = recent_features(
                [e[ITEM_ID] for e in last],
                [e.get(CATEGORY_ID) for e in last],
                [e[EVENT_TYPE] for e in last],
                [e[EVENT_TS] for e in last],
            )
            first, now = last[0][EVENT_TS], last[-1][EVENT_TS]
            records.extend(
                FeatureRecord(user, group, first, now, features)
                for group, features in groups.items()
            )
    return records


def latest_per_user(records: Iterable[FeatureRecord]) -> dict[tuple[str, str], FeatureRecord]:
    """The record of each (user, group) with the latest end: what an upsert topic ends with."""
    latest: dict[tuple[str, str], FeatureRecord] = {}
    for record in records:
        key = (record.entity_id, record.group)
        if key not in latest or record.window_end >= latest[key].window_end:
            latest[key] = record
    return latest


def session_features(events: Iterable[Event]) -> list[FeatureRecord]:
    """Sessions: runs of a user's events with no gap longer than ``SESSION_GAP_MS``."""
    per_user: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        per_user[event[USER_ID]].append(event)
    records = []
    for user, user_events in per_user.items():
        user_events.sort(key=lambda e: e[EVENT_TS])
        session: list[Event] = [user_events[0]]
        for event in user_events[1:]:
            # Like Flink's merging windows [ts, ts + gap): a gap of exactly the limit still joins.
            if event[EVENT_TS] - session[-1][EVENT_TS] > SESSION_GAP_MS:
                records.append(_session_record(user, session))
                session = []
            session.append(event)
        records.append(_session_record(user, session))
    return records


def _session_record(user: str, session: list[Event]) -> FeatureRecord:
    first, last = session[0][EVENT_TS], session[-1][EVENT_TS]
    kinds = [event[EVENT_TYPE] for event in session]
    features = {
        EVENTS: float(len(session)),
        SESSION_LENGTH_MS: float(last - first),
        DISTINCT_ITEMS: float(len({event[ITEM_ID] for event in session})),
        CARTS: float(kinds.count(ADD_TO_CART)),
        PURCHASES: float(kinds.count(PURCHASE)),
    }
    return FeatureRecord(user, SESSION_GROUP, first, last + SESSION_GAP_MS, features)
