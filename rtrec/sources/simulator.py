"""A seeded shop simulator with planted, documented structure (docs/sources.md).

Everything is drawn from ``random.Random`` instances seeded from the settings, so the same
settings give the same catalogue and the same events. Three independent streams are used
(world, events, noise) so that asking for more duplicates or malformed payloads never changes
the valid events: an integration test can recompute them with ``Simulator(...).events()``.
"""

from __future__ import annotations

import bisect
import heapq
import json
import math
import random
import statistics
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rtrec.config.settings import SimulatorSettings
from rtrec.errors import RtrecError
from rtrec.schema import EVENT_SCHEMA, encode
from rtrec.schema.events import (
    ADD_TO_CART,
    BRAND,
    CATEGORY_ID,
    CATEGORY_PATH,
    CHANNEL,
    CLICK,
    CREATED_TS,
    DEVICE,
    EVENT_ID,
    EVENT_TS,
    EVENT_TYPE,
    ITEM_ID,
    PRICE,
    PURCHASE,
    QUANTITY,
    REGION,
    REMOVE_FROM_CART,
    SCHEMA_VERSION_KEY,
    SESSION_ID,
    TITLE,
    USER_ID,
    VIEW,
)
from rtrec.sources import Duplicate, Event, Malformed, Record

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
SECOND_MS = 1000


@dataclass(frozen=True)
class Segment:
    """A user segment: its own categories, how strongly it sticks to them, and its price
    sensitivity ``s``: item choice and conversion scale with ``(price / category median) ** -s``
    (s > 0 favours cheap items, s < 0 expensive ones)."""

    name: str
    price_sensitivity: float
    preference: float
    categories: tuple[str, ...] = ()


# --- Planted structure; every number here is documented in docs/sources.md. ---
SEGMENTS = (
    Segment("bargain", price_sensitivity=1.5, preference=0.8),
    Segment("mainstream", price_sensitivity=0.0, preference=0.8),
    Segment("premium", price_sensitivity=-1.0, preference=0.8),
    Segment("explorer", price_sensitivity=0.3, preference=0.4),
)
PRICE_FACTOR_BOUNDS = (0.2, 3.0)
P_CLICK = 0.45  # view -> click
P_CART = 0.30  # click -> add_to_cart, times the price factor
P_REMOVE = 0.15  # a carted item is removed again at the next step
P_BUY = 0.60  # carted item -> purchase at checkout, times the price factor
P_NEXT_ITEM = 0.80  # the session goes on to another item (mean 5 items per session)
P_SWITCH_CATEGORY = 0.25  # the next item is drawn from a freshly chosen category
PAIR_SHARE = 0.05  # share of items that are the "A" of an "A then B" pair
P_PAIR_FOLLOW = 0.60  # after an event on A, the next item is B
NEW_ITEM_SHARE = 0.30  # items created during the simulated period rather than before it
POPULARITY_EXPONENT = 0.8  # Zipf exponent of item popularity within a category
MEAN_STEP_GAP_MS = 15 * SECOND_MS  # view -> click -> cart of one item
MEAN_ITEM_GAP_MS = 40 * SECOND_MS  # one item to the next
# Mean events per session measured with the defaults; it only sets the session arrival rate so
# that ``events`` valid events span about ``days`` days.
EVENTS_PER_SESSION = 9.0
# Relative session starts per UTC hour: quiet nights, a lunch bump, an evening peak.
HOURLY_WEIGHTS = (
    0.3, 0.2, 0.15, 0.1, 0.1, 0.15, 0.3, 0.6, 0.9, 1.0, 1.0, 1.1,
    1.3, 1.2, 1.0, 1.0, 1.1, 1.3, 1.6, 1.9, 2.0, 1.8, 1.3, 0.7,
)  # fmt: skip
DEVICES = ("mobile", "desktop", "app")
# Device mix by daypart: mobile dominates evenings and nights, desktop working hours.
DEVICE_WEIGHTS = {
    "night": (0.70, 0.15, 0.15),  # 00-06
    "day": (0.30, 0.55, 0.15),  # 07-17
    "evening": (0.65, 0.15, 0.20),  # 18-23
}
CHANNELS = ("organic", "ads", "email", "social")
CHANNEL_WEIGHTS = (0.55, 0.20, 0.10, 0.15)
REGIONS = ("north", "south", "east", "west")
RESEND_WINDOW = 100  # a duplicate re-sends one of the last this-many events
DEFECTS = (
    "truncated_json",
    "missing_field",
    "wrong_type",
    "unknown_event_type",
    "negative_price",
    "wrong_schema_version",
    "not_an_object",
)
_REQUIRED = tuple(f.name for f in EVENT_SCHEMA.fields if not f.nullable)


class Simulator:
    """The simulated shop: catalogue, users and their segments, "A then B" pairs, and events.

    Count semantics: ``events()`` yields exactly ``events`` valid, distinct events; ``stream()``
    yields those plus exactly ``duplicates`` re-sends and ``malformed`` bad payloads on top.
    ``duplicates`` / ``malformed`` default to ``round(share * events)`` from the settings.
    """

    def __init__(
        self,
        settings: SimulatorSettings,
        *,
        events: int | None = None,
        duplicates: int | None = None,
        malformed: int | None = None,
        seed: int | None = None,
        days: float = 7.0,
    ) -> None:
        self.seed = settings.seed if seed is None else seed
        self.n_events = settings.events if events is None else events
        self.n_duplicates = (
            round(settings.duplicate_share * self.n_events) if duplicates is None else duplicates
        )
        self.n_malformed = (
            round(settings.malformed_share * self.n_events) if malformed is None else malformed
        )
        if min(self.n_events, self.n_duplicates, self.n_malformed) < 0 or days <= 0:
            raise RtrecError("simulator counts must be >= 0 and days > 0")
        if self.n_events == 0 and self.n_duplicates + self.n_malformed > 0:
            raise RtrecError(
                "duplicates and malformed payloads are made from valid events: ask for events > 0"
            )
        self.start_ts = settings.start_ts_ms
        self.span_ms = int(days * DAY_MS)
        world = random.Random(f"rtrec-sim:{self.seed}:world")
        n_categories = min(settings.categories, settings.items)
        self.categories = [f"c{c:02d}" for c in range(n_categories)]
        self.catalogue = self._build_catalogue(world, settings.items)
        self.segments = self._build_segments(world)
        self.users = self._build_users(world, settings.users)
        self.pairs = self._build_pairs(world)
        self._index_items()
        sessions = self.n_events / EVENTS_PER_SESSION
        mean_rate = sessions / self.span_ms  # session starts per ms
        self._peak_rate = mean_rate * max(HOURLY_WEIGHTS) / statistics.fmean(HOURLY_WEIGHTS)

    # ----- world -----------------------------------------------------------------------------

    def _build_catalogue(self, rng: random.Random, n_items: int) -> list[dict[str, Any]]:
        n_categories = len(self.categories)
        base_price = {c: math.exp(rng.uniform(math.log(5), math.log(500))) for c in self.categories}
        width = len(str(n_items - 1))
        items = []
        for k in range(n_items):
            category = self.categories[k % n_categories]
            # Every category keeps at least one item that exists from the start.
            is_new = k >= n_categories and rng.random() < NEW_ITEM_SHARE
            created = (
                self.start_ts + rng.randrange(self.span_ms)
                if is_new
                else max(0, self.start_ts - rng.randrange(1, 180 * DAY_MS))
            )
            items.append(
                {
                    ITEM_ID: f"i{k:0{width}d}",
                    CATEGORY_ID: category,
                    CATEGORY_PATH: f"d{k % n_categories // 4}/{category}",
                    BRAND: f"{category}-b{rng.randrange(6)}",
                    PRICE: round(base_price[category] * rng.lognormvariate(0, 0.5), 2),
                    TITLE: f"{category} item {k}",
                    CREATED_TS: created,
                }
            )
        return items

    def _build_segments(self, rng: random.Random) -> tuple[Segment, ...]:
        shuffled = list(self.categories)
        rng.shuffle(shuffled)
        k = max(1, len(shuffled) // len(SEGMENTS))
        return tuple(
            Segment(
                s.name,
                s.price_sensitivity,
                s.preference,
                tuple(shuffled[(i * k + j) % len(shuffled)] for j in range(k)),
            )
            for i, s in enumerate(SEGMENTS)
        )

    def _build_users(self, rng: random.Random, n_users: int) -> dict[str, Segment]:
        width = len(str(n_users - 1))
        users = {f"u{u:0{width}d}": rng.choice(self.segments) for u in range(n_users)}
        self._user_ids = list(users)
        self._region = {u: rng.choice(REGIONS) for u in users}
        # Heavy-tailed activity: a few users start many sessions.
        self._user_cum = _cumulative([rng.lognormvariate(0, 1) for _ in users])
        return users

    def _build_pairs(self, rng: random.Random) -> dict[str, str]:
        n_pairs = max(1, int(len(self.catalogue) * PAIR_SHARE))
        n_pairs = min(n_pairs, len(self.catalogue) // 2)
        picked = rng.sample(self.catalogue, 2 * n_pairs)
        pairs = {}
        for a, b in zip(picked[:n_pairs], picked[n_pairs:], strict=True):
            # B is the older of the two, so B exists whenever A can be shown.
            if b[CREATED_TS] > a[CREATED_TS]:
                a, b = b, a
            pairs[a[ITEM_ID]] = b[ITEM_ID]
        return pairs

    def _index_items(self) -> None:
        """Per category, items sorted by creation time with per-segment cumulative weights,
        so that choosing among the items that exist at time t is one bisect."""
        self._item = {item[ITEM_ID]: item for item in self.catalogue}
        by_category: dict[str, list[dict[str, Any]]] = {c: [] for c in self.categories}
        for item in self.catalogue:
            by_category[item[CATEGORY_ID]].append(item)
        median = {c: statistics.median(i[PRICE] for i in its) for c, its in by_category.items()}
        self._factor = {
            (s.name, item[ITEM_ID]): _price_factor(item[PRICE] / median[c], s.price_sensitivity)
            for s in self.segments
            for c, its in by_category.items()
            for item in its
        }
        self._sorted: dict[str, list[dict[str, Any]]] = {}
        self._created: dict[str, list[int]] = {}
        self._cum: dict[tuple[str, str], list[float]] = {}
        for c, its in by_category.items():
            its.sort(key=lambda item: (item[CREATED_TS], item[ITEM_ID]))
            ranks = list(range(1, len(its) + 1))
            random.Random(f"rtrec-sim:{self.seed}:popularity:{c}").shuffle(ranks)
            self._sorted[c] = its
            self._created[c] = [item[CREATED_TS] for item in its]
            for s in self.segments:
                self._cum[(s.name, c)] = _cumulative(
                    [
                        r**-POPULARITY_EXPONENT * self._factor[(s.name, item[ITEM_ID])]
                        for r, item in zip(ranks, its, strict=True)
                    ]
                )

    # ----- events ----------------------------------------------------------------------------

    def events(self) -> Iterator[Event]:
        """Exactly ``events`` valid events in event-time order (ties in generation order)."""
        if self.n_events == 0:
            return
        rng = random.Random(f"rtrec-sim:{self.seed}:events")
        pending: list[tuple[int, int, Event]] = []  # (event_ts, sequence, event)
        sequence = session_no = 0
        next_start = self._next_start(rng, self.start_ts)
        for n in range(self.n_events):
            # Sessions interleave: start every session due before the earliest pending event.
            while not pending or next_start <= pending[0][0]:
                session_no += 1
                for event in self._session(rng, next_start, f"s{self.seed}-{session_no}"):
                    heapq.heappush(pending, (event[EVENT_TS], sequence, event))
                    sequence += 1
                next_start = self._next_start(rng, next_start)
            event = heapq.heappop(pending)[2]
            event[EVENT_ID] = f"sim{self.seed}-{n:08d}"
            yield event

    def stream(self) -> Iterator[Record]:
        """``events()`` with ``duplicates`` re-sends and ``malformed`` payloads mixed in.

        A duplicate re-sends one of the last ``RESEND_WINDOW`` events (so it arrives slightly
        late, as a retrying client's would); a malformed payload is derived from the event just
        emitted, cycling through ``DEFECTS`` so every kind appears."""
        noise = random.Random(f"rtrec-sim:{self.seed}:noise")
        resend_after = Counter(noise.randrange(self.n_events) for _ in range(self.n_duplicates))
        break_after = Counter(noise.randrange(self.n_events) for _ in range(self.n_malformed))
        recent: deque[Event] = deque(maxlen=RESEND_WINDOW)
        broken = 0
        for n, event in enumerate(self.events()):
            recent.append(event)
            yield event
            for _ in range(resend_after[n]):
                yield Duplicate(noise.choice(recent))
            for _ in range(break_after[n]):
                defect = DEFECTS[broken % len(DEFECTS)]
                broken += 1
                yield Malformed(malformed_payload(event, defect, noise), defect, event[EVENT_TS])

    def _next_start(self, rng: random.Random, t: int) -> int:
        """The next session start: a Poisson process thinned by the hour-of-day weights."""
        peak = max(HOURLY_WEIGHTS)
        while True:
            t += int(rng.expovariate(self._peak_rate))
            if rng.random() * peak < HOURLY_WEIGHTS[t // HOUR_MS % 24]:
                return t

    def _session(self, rng: random.Random, start: int, session_id: str) -> list[Event]:
        user = self._user_ids[_pick(rng, self._user_cum)]
        segment = self.users[user]
        hour = start // HOUR_MS % 24
        daypart = "night" if hour < 7 else "day" if hour < 18 else "evening"
        context = {
            USER_ID: user,
            SESSION_ID: session_id,
            DEVICE: rng.choices(DEVICES, DEVICE_WEIGHTS[daypart])[0],
            CHANNEL: rng.choices(CHANNELS, CHANNEL_WEIGHTS)[0],
            REGION: self._region[user],
        }
        out: list[Event] = []

        def emit(item: dict[str, Any], event_type: str, ts: int, quantity: int | None) -> None:
            out.append(_event(context, item, event_type, ts, quantity))

        t = start
        category = self._category(rng, segment)
        cart: list[tuple[dict[str, Any], int]] = []
        previous: str | None = None
        while True:
            item = self._next_item(rng, segment, category, previous, t)
            emit(item, VIEW, t, None)
            factor = self._factor[(segment.name, item[ITEM_ID])]
            if rng.random() < P_CLICK:
                t += _gap(rng, MEAN_STEP_GAP_MS)
                emit(item, CLICK, t, None)
                if rng.random() < P_CART * factor:
                    t += _gap(rng, MEAN_STEP_GAP_MS)
                    quantity = 1 if rng.random() < 0.85 else rng.randint(2, 3)
                    emit(item, ADD_TO_CART, t, quantity)
                    cart.append((item, quantity))
            previous = item[ITEM_ID]
            if rng.random() >= P_NEXT_ITEM:
                break
            t += _gap(rng, MEAN_ITEM_GAP_MS)
            if cart and rng.random() < P_REMOVE:
                removed, quantity = cart.pop(rng.randrange(len(cart)))
                emit(removed, REMOVE_FROM_CART, t, quantity)
                t += _gap(rng, MEAN_STEP_GAP_MS)
            if rng.random() < P_SWITCH_CATEGORY:
                category = self._category(rng, segment)
        for item, quantity in cart:  # checkout at the end of the session
            if rng.random() < P_BUY * self._factor[(segment.name, item[ITEM_ID])]:
                t += _gap(rng, MEAN_STEP_GAP_MS)
                emit(item, PURCHASE, t, quantity)
        return out

    def _category(self, rng: random.Random, segment: Segment) -> str:
        pool = segment.categories if rng.random() < segment.preference else self.categories
        return rng.choice(pool)

    def _next_item(
        self, rng: random.Random, segment: Segment, category: str, previous: str | None, t: int
    ) -> dict[str, Any]:
        partner = self.pairs.get(previous) if previous else None
        if partner and rng.random() < P_PAIR_FOLLOW:
            return self._item[partner]
        # Only items created by t exist; the first item of every category predates the start.
        available = bisect.bisect_right(self._created[category], t)
        cum = self._cum[(segment.name, category)]
        return self._sorted[category][_pick(rng, cum, available)]


def malformed_payload(event: Event, defect: str, rng: random.Random) -> bytes:
    """A wire payload derived from ``event`` that fails ``rtrec.schema.validate`` by ``defect``."""
    wire = encode(event)
    body = json.loads(wire)
    if defect == "truncated_json":
        return wire[: rng.randrange(1, len(wire))]
    if defect == "missing_field":
        del body[rng.choice(_REQUIRED)]
    elif defect == "wrong_type":
        body[EVENT_TS] = datetime.fromtimestamp(event[EVENT_TS] / 1000, UTC).isoformat()
    elif defect == "unknown_event_type":
        body[EVENT_TYPE] = rng.choice(("wishlist", "like", "share"))
    elif defect == "negative_price":
        body[PRICE] = -round(abs(body[PRICE] or 0.0) + 1.0, 2)
    elif defect == "wrong_schema_version":
        body[SCHEMA_VERSION_KEY] = rng.choice((0, 2, "1"))
    elif defect == "not_an_object":
        return json.dumps(list(body.values())).encode()
    else:
        raise ValueError(f"unknown defect {defect!r}")
    return json.dumps(body).encode()


def _event(
    context: dict[str, str], item: dict[str, Any], event_type: str, ts: int, quantity: int | None
) -> Event:
    event: Event = dict.fromkeys(EVENT_SCHEMA.names)
    event.update(context)
    event[ITEM_ID] = item[ITEM_ID]
    event[EVENT_TYPE] = event_type
    event[EVENT_TS] = ts
    event[CATEGORY_ID] = item[CATEGORY_ID]
    event[PRICE] = item[PRICE]
    event[QUANTITY] = quantity
    return event


def _price_factor(relative_price: float, sensitivity: float) -> float:
    low, high = PRICE_FACTOR_BOUNDS
    factor: float = relative_price**-sensitivity
    return min(high, max(low, factor))


def _cumulative(weights: Sequence[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


def _pick(rng: random.Random, cum: list[float], n: int | None = None) -> int:
    """Index drawn in proportion to the weights behind ``cum`` (first ``n`` only)."""
    n = len(cum) if n is None else n
    return min(bisect.bisect_right(cum, rng.random() * cum[n - 1], 0, n), n - 1)


def _gap(rng: random.Random, mean_ms: int) -> int:
    return SECOND_MS + int(rng.expovariate(1 / mean_ms))
