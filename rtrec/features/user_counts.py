"""Per-user event counts: the walking-skeleton feature, defined once for stream, batch and tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rtrec.schema.events import EVENT_ID, EVENT_TS, EVENT_TYPE, EVENT_TYPES, USER_ID

TOTAL = "events"
LAST_EVENT_TS = "last_event_ts"


def count_column(event_type: str) -> str:
    return f"{event_type}_count"


COUNT_COLUMNS: tuple[str, ...] = (TOTAL, *(count_column(t) for t in EVENT_TYPES))


def user_counts(events: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Counts per user over valid events, each ``event_id`` counted once (first occurrence)."""
    seen: set[str] = set()
    counts: dict[str, dict[str, int]] = {}
    for event in events:
        if event[EVENT_ID] in seen:
            continue
        seen.add(event[EVENT_ID])
        row = counts.setdefault(event[USER_ID], {c: 0 for c in COUNT_COLUMNS} | {LAST_EVENT_TS: 0})
        row[TOTAL] += 1
        row[count_column(event[EVENT_TYPE])] += 1
        row[LAST_EVENT_TS] = max(row[LAST_EVENT_TS], event[EVENT_TS])
    return counts
