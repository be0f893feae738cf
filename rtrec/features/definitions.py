"""The behaviour features, defined once. The Flink job (SQL), its Spark batch twin and the
plain-Python reference all derive their windows, groups and column names from here.

Every window feature is computed on event time and emitted once per window when the watermark
passes its end; a feature record names its entity, its group and the window it describes.
"""

from __future__ import annotations

from dataclasses import dataclass

from rtrec.schema.events import ADD_TO_CART, CLICK, EVENT_TYPES, IMPRESSION, PURCHASE, VIEW

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

# Columns of a feature record on rtrec.user_features / rtrec.item_features (upsert topics keyed
# by entity and group, so the latest window of each group is what a reader sees).
ENTITY_ID = "entity_id"
FEATURE_GROUP = "feature_group"
WINDOW_START = "start_ms"
WINDOW_END = "end_ms"
FEATURES = "features"


@dataclass(frozen=True)
class HopWindow:
    """A sliding window of ``size_ms`` advancing by ``slide_ms``, aligned to the epoch."""

    name: str
    size_ms: int
    slide_ms: int

    @property
    def group(self) -> str:
        return f"counts_{self.name}"


USER_WINDOWS = (
    HopWindow("10m", 10 * MINUTE_MS, MINUTE_MS),
    HopWindow("1h", HOUR_MS, 5 * MINUTE_MS),
    HopWindow("24h", DAY_MS, HOUR_MS),
)
ITEM_WINDOWS = (
    HopWindow("1h", HOUR_MS, 5 * MINUTE_MS),
    HopWindow("24h", DAY_MS, HOUR_MS),
)

# A user's session ends after this much event time without an event.
SESSION_GAP_MS = 30 * MINUTE_MS
SESSION_GROUP = "session"
TOTALS_GROUP = "totals"

# User window groups: one count per event type plus the total.
EVENTS = "events"


def type_count(event_type: str) -> str:
    return f"{event_type}_count"


USER_COUNT_FEATURES: tuple[str, ...] = (EVENTS, *(type_count(t) for t in EVENT_TYPES))

# Session features.
SESSION_LENGTH_MS = "length_ms"
DISTINCT_ITEMS = "distinct_items"
CARTS = "carts"
PURCHASES = "purchases"
SESSION_FEATURES = (EVENTS, SESSION_LENGTH_MS, DISTINCT_ITEMS, CARTS, PURCHASES)

# How much an event says about the shopper's interest; other types weigh 0.
INTENT_WEIGHTS = {VIEW: 1.0, CLICK: 1.0, ADD_TO_CART: 3.0, PURCHASE: 5.0}

# Item window features. Trending is the window's interactions weighted by intent.
VIEWS = "views"
CONVERSION = "conversion"
TRENDING = "trending"
ITEM_FEATURES = (VIEWS, CARTS, PURCHASES, CONVERSION, TRENDING)

# Recent behaviour, updated on every event of the user (event time, not windowed): from the
# user's last RECENT_EVENTS events, the distinct items and categories with the time each was
# last touched (feature name = item or category id, value = epoch ms; newest first is a sort
# by value), and each category's affinity: the intent weights of its events, each halved per
# AFFINITY_HALF_LIFE_MS it lies behind the user's latest event. Impressions are what the
# shopper was shown, not what they did, so they are not part of it.
RECENT_EVENTS = 20
AFFINITY_HALF_LIFE_MS = 6 * HOUR_MS
RECENT_ITEMS_GROUP = "recent_items"
RECENT_CATEGORIES_GROUP = "recent_categories"
AFFINITY_GROUP = "category_affinity"
RECENT_GROUPS = (RECENT_ITEMS_GROUP, RECENT_CATEGORIES_GROUP, AFFINITY_GROUP)
NOT_RECENT = (IMPRESSION,)
