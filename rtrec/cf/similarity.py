"""Stages 2 and 3 of online CF, both keyed by item.

Stage 2 (rows) owns item i's co-occurrence row c(i, .) and its squared norm n(i) and tells each
partner j the current (c(i, j), n(i)). Stage 3 (neighbours) keeps, for item j, the latest such
pair from every partner plus n(j), and ranks cosine neighbours. Stage 2's messages carry values,
not increments, so a receiver only needs the last one per sender: that is what makes the result
at quiescence independent of how messages from different senders interleave, and what lets the
expensive fan-outs be coalesced into periodic flushes (docs/online_cf.md §5).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from rtrec.cf.history import RowDelta
from rtrec.cf.params import CfParams

Ranked = tuple[tuple[str, float], ...]  # (item, score), best first, ties by item id


@dataclass(frozen=True, slots=True)
class RowState:
    norm: float = 0.0  # n(i)
    row: Mapping[str, float] = field(default_factory=dict)  # partner -> c(i, partner) > 0
    norm_moved: bool = False  # n(i) changed since the partners were last told (flush_row)


@dataclass(frozen=True, slots=True)
class PartnerUpdate:
    """To ``item``'s stage 3: partner's row holds c(partner, item) = ``cooccurrence`` and
    n(partner) = ``partner_norm``; a co-occurrence of 0 means the partner dropped ``item``."""

    item: str
    partner: str
    cooccurrence: float
    partner_norm: float


@dataclass(frozen=True, slots=True)
class NormUpdate:
    """To ``item``'s stage 3: its own squared norm."""

    item: str
    norm: float


@dataclass(frozen=True, slots=True)
class NeighbourState:
    norm: float = 0.0  # own n(j); 0 until the first NormUpdate
    partners: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # c, n(partner)
    neighbours: Ranked = ()  # the current ranking
    published: Ranked = ()  # the ranking last emitted (flush_neighbours)


@dataclass(frozen=True, slots=True)
class Neighbours:
    """The top-N cosine neighbours of ``item`` (the ``rtrec.item_neighbours`` record)."""

    item: str
    neighbours: Ranked


def apply_row_delta(
    state: RowState, delta: RowDelta, params: CfParams
) -> tuple[RowState, tuple[PartnerUpdate | NormUpdate, ...]]:
    """Add a delta to item ``delta.item``'s row and norm; tell stage 3 what changed.

    Partners whose c changed or who were pruned hear at once, the item itself hears its new
    norm at once; the other partners learn the new norm at the next ``flush_row``. The row keeps
    the ``max_partners`` largest co-occurrences (ties keep the smaller id).
    """
    item = delta.item
    norm = state.norm + delta.norm_delta
    row = dict(state.row)
    for partner, c in delta.pairs:
        row[partner] = row.get(partner, 0.0) + c
    excess = len(row) - params.max_partners
    dropped: list[str] = []
    if excess > 0:
        dropped = [p for p, _ in heapq.nlargest(excess, row.items(), key=best_first)]
        for partner in dropped:
            del row[partner]
    messages: list[PartnerUpdate | NormUpdate] = []
    if delta.norm_delta:
        messages.append(NormUpdate(item, norm))
    messages.extend(PartnerUpdate(p, item, row[p], norm) for p, _ in delta.pairs if p in row)
    messages.extend(PartnerUpdate(p, item, 0.0, norm) for p in sorted(dropped) if p in state.row)
    moved = state.norm_moved or bool(delta.norm_delta)
    return RowState(norm, row, moved), tuple(messages)


def flush_row(item: str, state: RowState) -> tuple[RowState, tuple[PartnerUpdate, ...]]:
    """Tell every partner the current (c, n(item)) if n(item) moved since the last flush."""
    if not state.norm_moved:
        return state, ()
    messages = tuple(PartnerUpdate(p, item, c, state.norm) for p, c in sorted(state.row.items()))
    return RowState(state.norm, state.row, False), messages


def apply_partner_update(
    state: NeighbourState, message: PartnerUpdate | NormUpdate, params: CfParams
) -> NeighbourState:
    """Record a stage-2 message for ``message.item`` and re-rank its neighbours.

    Keeps at most ``max_partners`` partners, dropping the lowest c / sqrt(n(partner)).
    """
    if isinstance(message, NormUpdate):
        if state.norm > 0.0:
            # The own norm scales every sim alike, so the members stay: rescore only them.
            members = {p: state.partners[p] for p, _ in state.neighbours}
            ranked = rank_neighbours(message.norm, members, params.neighbours)
        else:
            ranked = rank_neighbours(message.norm, state.partners, params.neighbours)
        return NeighbourState(message.norm, state.partners, ranked, state.published)
    partner = message.partner
    partners = dict(state.partners)
    if message.cooccurrence > 0.0:
        partners[partner] = (message.cooccurrence, message.partner_norm)
        if len(partners) > params.max_partners:
            del partners[max(partners.items(), key=_rank_key)[0]]
    else:
        partners.pop(partner, None)
    ranked = state.neighbours
    if _may_change_ranking(state, message, params.neighbours):
        ranked = rank_neighbours(state.norm, partners, params.neighbours)
    return NeighbourState(state.norm, partners, ranked, state.published)


def flush_neighbours(item: str, state: NeighbourState) -> tuple[NeighbourState, Neighbours | None]:
    """The ranking to emit (to ``rtrec.item_neighbours`` and to subscribers) if it changed
    since the last flush."""
    if state.neighbours == state.published:
        return state, None
    flushed = NeighbourState(state.norm, state.partners, state.neighbours, state.neighbours)
    return flushed, Neighbours(item, state.neighbours)


def rank_neighbours(norm: float, partners: Mapping[str, tuple[float, float]], top: int) -> Ranked:
    """Top ``top`` partners by sim = c / sqrt(norm * n(partner)); empty while ``norm`` is 0."""
    if norm <= 0.0:
        return ()
    # (-sim, id) tuples compare natively, which keeps this hot loop free of key calls.
    scored = [(-c / math.sqrt(norm * n), p) for p, (c, n) in partners.items()]
    return tuple((p, -negative) for negative, p in heapq.nsmallest(top, scored))


def best_first(scored: tuple[str, float]) -> tuple[float, str]:
    """Sort key: higher score first, then smaller id, so rankings are deterministic."""
    return (-scored[1], scored[0])


def _may_change_ranking(state: NeighbourState, message: PartnerUpdate, top: int) -> bool:
    # The common case on a busy item: a partner outside a full top-N that stays below its last
    # member cannot change the ranking, so skip the O(partners) re-rank. Evicting a partner to
    # honour max_partners never touches the top-N either, since the lowest one goes.
    if state.norm <= 0.0 or len(state.neighbours) < top:
        return True
    if any(p == message.partner for p, _ in state.neighbours):
        return True
    if message.cooccurrence <= 0.0:
        return False
    sim = message.cooccurrence / math.sqrt(state.norm * message.partner_norm)
    return best_first((message.partner, sim)) < best_first(state.neighbours[-1])


def _rank_key(entry: tuple[str, tuple[float, float]]) -> tuple[float, str]:
    # c / sqrt(n(partner)) orders partners as sim does, without needing the own norm.
    partner, (c, n) = entry
    return best_first((partner, c / math.sqrt(n)))
