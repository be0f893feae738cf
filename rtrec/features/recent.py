"""The recent-behaviour groups (``RECENT_GROUPS``) of one user from their last events.

One pure function, called by the Flink job (as a table function over the arrays its SQL OVER
window collects), by the Spark twin (as a UDF over the same arrays) and by the reference, so the
three agree to the bit: the same floats summed in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence

from rtrec.features.definitions import (
    AFFINITY_GROUP,
    AFFINITY_HALF_LIFE_MS,
    INTENT_WEIGHTS,
    RECENT_CATEGORIES_GROUP,
    RECENT_ITEMS_GROUP,
)


def recent_features(
    items: Sequence[str],
    categories: Sequence[str | None],
    event_types: Sequence[str],
    timestamps: Sequence[int],
) -> dict[str, dict[str, float]]:
    """Feature maps by group from a user's last events (parallel sequences, any order).

    The events are sorted first, so the result depends on the set of events alone: the engines
    hand the arrays over in their own order. A missing category is None or ""."""
    events = sorted(zip(timestamps, items, event_types, (c or "" for c in categories), strict=True))
    if not events:
        return {}
    now = events[-1][0]
    last_item: dict[str, float] = {}
    last_category: dict[str, float] = {}
    affinity: dict[str, float] = {}
    for ts, item, event_type, category in events:
        last_item[item] = float(ts)  # ascending time: the last write is the latest
        if not category:
            continue
        last_category[category] = float(ts)
        weight = INTENT_WEIGHTS.get(event_type, 0.0)
        if weight:
            decayed = weight * 0.5 ** ((now - ts) / AFFINITY_HALF_LIFE_MS)
            affinity[category] = affinity.get(category, 0.0) + decayed
    return {
        RECENT_ITEMS_GROUP: last_item,
        RECENT_CATEGORIES_GROUP: last_category,
        AFFINITY_GROUP: affinity,
    }
