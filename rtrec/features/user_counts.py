"""Per-user running totals (the ``totals`` group): the plain-Python reference."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rtrec.features.definitions import EVENTS, USER_COUNT_FEATURES, type_count
from rtrec.schema.events import EVENT_ID, EVENT_TS, EVENT_TYPE, USER_ID

LAST_EVENT_TS = "last_event_ts"


def user_counts(events: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Counts per user over valid events, each ``event_id`` counted once (first occurrence)."""
    seen: set[str] = set()
    counts: dict[str, dict[str, int]] = {}
    for event in events:
        if event[EVENT_ID] in seen:
            continue
        seen.add(event[EVENT_ID])
        row = counts.setdefault(
            event[USER_ID], {c: 0 for c in USER_COUNT_FEATURES} | {LAST_EVENT_TS: 0}
        )
        row[EVENTS] += 1
        row[type_count(event[EVENT_TYPE])] += 1
        row[LAST_EVENT_TS] = max(row[LAST_EVENT_TS], event[EVENT_TS])
    return counts
