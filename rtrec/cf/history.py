"""Stage 1 of online CF, keyed by user: deduplicate, keep the bounded history, emit deltas.

Everything a user's event changes is computed here from that user's own state, so the stage
needs nothing from other keys; its outputs are routed by item (row deltas, subscriptions) and by
user (the profile that weights CF scores). docs/online_cf.md §2-§4 gives the formulas.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from rtrec.cf.params import CfParams


@dataclass(frozen=True, slots=True)
class CfEvent:
    """The fields of a valid event that online CF reads."""

    event_id: str
    user_id: str
    item_id: str
    event_type: str
    event_ts: int


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    item: str
    ts: int  # effective event time (never behind the user's clock), ms
    position: int  # the user's count of applied events before this one
    weight: float


@dataclass(frozen=True, slots=True)
class UserState:
    """One user's CF state. Bounded: ``history_size`` entries, ``dedup_size`` event ids."""

    clock: int | None = None  # effective time of the last applied event
    position: int = 0  # position the next applied event gets
    history: tuple[HistoryEntry, ...] = ()  # oldest first
    seen: Mapping[str, int] | None = None  # event id -> effective time, oldest first


@dataclass(frozen=True, slots=True)
class RowDelta:
    """Additions to item ``item``'s co-occurrence row and to its squared norm."""

    item: str
    norm_delta: float
    pairs: tuple[tuple[str, float], ...]  # (partner, added co-occurrence), sorted by partner


@dataclass(frozen=True, slots=True)
class Subscription:
    """User ``user`` starts (``active``) or stops needing item ``item``'s neighbour list."""

    item: str
    user: str
    active: bool


@dataclass(frozen=True, slots=True)
class UserProfile:
    """The decayed weight of each distinct history item, as of the user's clock ``as_of``."""

    user: str
    as_of: int
    weights: tuple[tuple[str, float], ...]  # sorted by item


class Outcome(Enum):
    APPLIED = "applied"
    ZERO_WEIGHT = "zero_weight"  # e.g. impressions: not part of CF at all
    DUPLICATE = "duplicate"  # event id already applied for this user
    LATE = "late"  # older than the history TTL behind the user's clock


@dataclass(frozen=True, slots=True)
class UserStep:
    """What applying one event produced; empty unless ``outcome`` is APPLIED."""

    outcome: Outcome
    row_deltas: tuple[RowDelta, ...] = ()
    subscriptions: tuple[Subscription, ...] = ()
    profile: UserProfile | None = None


def pair_kernel(position_gap: int, time_gap_ms: int, params: CfParams) -> float:
    """k(a, b) for two events of one user ``position_gap`` applied events and ``time_gap_ms``
    effective milliseconds apart: position triangle x exponential decay x TTL triangle.

    Each factor is a positive-definite function of the gap, so their product is too; that makes
    ``c`` and ``n`` inner products and the cosine provably <= 1 (docs/online_cf.md §3). Zero
    exactly when the older entry has left the history, so eviction drops nothing.
    """
    if position_gap >= params.history_size or time_gap_ms >= params.history_ttl_ms:
        return 0.0
    return (
        (1.0 - position_gap / params.history_size)
        * math.exp(-time_gap_ms / params.decay_ms)
        * (1.0 - time_gap_ms / params.history_ttl_ms)
    )


def apply_user_event(
    state: UserState, event: CfEvent, params: CfParams
) -> tuple[UserState, UserStep]:
    """Apply one event (in the user's arrival order) to the user's state.

    Deterministic and wall-clock free; the batch twin folds this same function over each user's
    events ordered by (Kafka partition, offset).
    """
    weight = params.weight(event.event_type)
    if weight == 0.0:
        return state, UserStep(Outcome.ZERO_WEIGHT)
    seen = state.seen or {}
    if event.event_id in seen:
        return state, UserStep(Outcome.DUPLICATE)
    if state.clock is not None and event.event_ts <= state.clock - params.history_ttl_ms:
        return state, UserStep(Outcome.LATE)

    # A late event is applied at the user's clock: this keeps time monotone per user, which is
    # what lets eviction be exact (an evicted entry can never pair again).
    now = event.event_ts if state.clock is None else max(event.event_ts, state.clock)
    position = state.position
    item = event.item_id
    norm_delta = weight * weight
    pairs: dict[str, float] = {}
    kept: list[HistoryEntry] = []
    for entry in state.history:
        k = pair_kernel(position - entry.position, now - entry.ts, params)
        if k == 0.0:
            continue
        kept.append(entry)
        contribution = weight * entry.weight * k
        if entry.item == item:
            # Same-item pairs belong to the norm, counted both ways as in <phi_i, phi_i>.
            norm_delta += 2.0 * contribution
        else:
            pairs[entry.item] = pairs.get(entry.item, 0.0) + contribution
    kept.append(HistoryEntry(item, now, position, weight))
    history = tuple(kept)

    new_state = UserState(
        clock=now,
        position=position + 1,
        history=history,
        seen=_remember(seen, event.event_id, now, params),
    )
    partner_pairs = tuple(sorted(pairs.items()))
    row_deltas = (
        RowDelta(item, norm_delta, partner_pairs),
        *(RowDelta(partner, 0.0, ((item, c),)) for partner, c in partner_pairs),
    )
    before = {e.item for e in state.history}
    after = {e.item for e in history}
    subscriptions = (
        *(Subscription(i, event.user_id, True) for i in sorted(after - before)),
        *(Subscription(i, event.user_id, False) for i in sorted(before - after)),
    )
    step = UserStep(
        Outcome.APPLIED, row_deltas, subscriptions, user_profile(event.user_id, new_state, params)
    )
    return new_state, step


def user_profile(user: str, state: UserState, params: CfParams) -> UserProfile:
    """Per distinct history item h: a_h = sum of w * exp(-(clock - t) / decay) over its entries."""
    now = state.clock if state.clock is not None else 0
    weights: dict[str, float] = {}
    for entry in state.history:
        decayed = entry.weight * math.exp(-(now - entry.ts) / params.decay_ms)
        weights[entry.item] = weights.get(entry.item, 0.0) + decayed
    return UserProfile(user, now, tuple(sorted(weights.items())))


def _remember(seen: Mapping[str, int], event_id: str, now: int, params: CfParams) -> dict[str, int]:
    # Ids are stored in arrival order with monotone effective times, so expired ids and the
    # overflow are both at the front.
    cutoff = now - params.history_ttl_ms
    keep = [(i, t) for i, t in seen.items() if t > cutoff]
    keep.append((event_id, now))
    return dict(keep[-params.dedup_size :])
