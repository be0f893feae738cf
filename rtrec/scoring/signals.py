"""What the scoring job knows besides the models: each user's recent behaviour, what is trending
in each context, and an index of items by category for content neighbours. Plain, bounded data
structures updated event by event; every count decays exponentially in event time, so "now" is
the latest event, not the wall clock, and a replay gives the same lists as the live run.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from rtrec.schema.events import PURCHASE
from rtrec.scoring.rules import ItemInfo

HOUR_MS = 3_600_000
DAYPARTS = ((6, "night"), (12, "morning"), (18, "afternoon"), (24, "evening"))  # UTC hour <


def context_of(device: str | None, event_ts: int) -> str:
    """The context trending is counted in: device class and part of the day (UTC)."""
    hour = (event_ts // HOUR_MS) % 24
    daypart = next(name for end, name in DAYPARTS if hour < end)
    return f"{device or 'any device'}, {daypart}"


@dataclass(frozen=True, slots=True)
class Interaction:
    item: str
    event_type: str
    ts: int
    category: str | None
    price: float | None


@dataclass(frozen=True, slots=True)
class UserView:
    """One user's recent interactions (newest last) and purchases, both bounded."""

    recent: tuple[Interaction, ...] = ()
    purchased: tuple[str, ...] = ()  # oldest first

    def observe(self, interaction: Interaction, keep_recent: int, keep_purchased: int) -> UserView:
        # A repeat of the newest item replaces it: the recent list is of distinct steps.
        recent = self.recent
        if recent and recent[-1].item == interaction.item:
            recent = recent[:-1]
        purchased = self.purchased
        if interaction.event_type == PURCHASE and interaction.item not in purchased:
            purchased = (*purchased, interaction.item)[-keep_purchased:]
        return UserView((*recent, interaction)[-keep_recent:], purchased)

    def history(self) -> list[str]:
        """The user's items oldest first, the deep model's input."""
        return [i.item for i in self.recent]


@dataclass
class DecayedCounts:
    """Counts per key that halve every ``half_life_ms`` of event time, at most ``capacity`` keys
    (the weakest are dropped when the map reaches twice that). Stored as log-scaled values at a
    fixed origin, so adding never rescales the others."""

    half_life_ms: int
    capacity: int
    values: dict[str, float] = field(default_factory=dict)  # key -> log2 of the count at t=0
    now: int = 0

    def add(self, key: str, weight: float, ts: int) -> None:
        if weight <= 0.0:
            return
        self.now = max(self.now, ts)
        term = math.log2(weight) + ts / self.half_life_ms
        old = self.values.get(key)
        self.values[key] = term if old is None else _log2_add(old, term)
        if len(self.values) >= 2 * self.capacity:
            keep = heapq.nlargest(self.capacity, self.values.items(), key=lambda kv: kv[1])
            self.values = dict(keep)

    def top(self, n: int) -> list[tuple[str, float]]:
        """The ``n`` largest counts as of the latest event, best first (ties by key)."""
        best = heapq.nsmallest(n, self.values.items(), key=lambda kv: (-kv[1], kv[0]))
        return [(key, 2.0 ** (value - self.now / self.half_life_ms)) for key, value in best]

    def count(self, key: str) -> float:
        value = self.values.get(key)
        return 0.0 if value is None else 2.0 ** (value - self.now / self.half_life_ms)


def merge_facts(known: ItemInfo, category: str | None, price: float | None) -> ItemInfo:
    """The latest category and price an event states (an event without them changes nothing)."""
    return replace(
        known,
        category=category if category is not None else known.category,
        price=price if price is not None else known.price,
    )


def content_neighbours(
    anchors: Iterable[Interaction],
    by_category: Mapping[str, DecayedCounts],
    facts: Mapping[str, ItemInfo],
    per_anchor: int,
) -> list[tuple[str, float, str]]:
    """``(item, score, anchor item)`` of items like each anchor: same category, close in price,
    popular now. score = popularity share x 1 / (1 + |ln(price / anchor price)|). An item first
    seen a minute ago qualifies as soon as any event has stated its category: this is how an
    item the deep model never saw gets recommended."""
    out: list[tuple[str, float, str]] = []
    for anchor in anchors:
        counts = by_category.get(anchor.category or "")
        if counts is None:
            continue
        pool = counts.top(per_anchor * 4)
        total = sum(c for _, c in pool) or 1.0
        scored = []
        for item, popularity in pool:
            if item == anchor.item:
                continue
            price = facts.get(item, ItemInfo()).price
            closeness = 1.0
            if price and anchor.price:
                closeness = 1.0 / (1.0 + abs(math.log(price / anchor.price)))
            scored.append((item, popularity / total * closeness, anchor.item))
        scored.sort(key=lambda s: (-s[1], s[0]))
        out.extend(scored[:per_anchor])
    return out


def _log2_add(a: float, b: float) -> float:
    """log2(2**a + 2**b) without overflow."""
    high, low = (a, b) if a >= b else (b, a)
    return high + math.log2(1.0 + 2.0 ** (low - high))
