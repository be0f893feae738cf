"""Per-user CF candidate scores: stage 3's pushes to users and stage 4, keyed by user.

A user's stage 1 subscribes to the neighbour list of every distinct item in its history; item
h's stage 3 pushes its current list to a new subscriber at once, to all subscribers some time
after it changes (coalesced: only the latest list matters), and a tombstone on unsubscription.
Stage 4 keeps the last push per item and the user's latest profile, and scores candidates from
them (docs/online_cf.md §6).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from rtrec.cf.history import Subscription, UserProfile
from rtrec.cf.params import CfParams
from rtrec.cf.similarity import Neighbours, Ranked, best_first


@dataclass(frozen=True, slots=True)
class NeighbourPush:
    """Item ``item``'s neighbour list for user ``user``; None withdraws it (unsubscribed)."""

    user: str
    item: str
    neighbours: Ranked | None


@dataclass(frozen=True, slots=True)
class CfScores:
    """A user's top CF candidates (the ``rtrec.cf_scores`` record)."""

    user: str
    scores: Ranked


@dataclass(frozen=True, slots=True)
class ScoreState:
    profile: UserProfile | None = None
    lists: Mapping[str, Ranked] = field(default_factory=dict)  # history item -> its neighbours
    scores: Ranked = ()  # as last emitted


def push_on_subscription(subscription: Subscription, current: Ranked) -> NeighbourPush:
    """Stage 3's answer to a (un)subscription: the current list, or its withdrawal."""
    neighbours = current if subscription.active else None
    return NeighbourPush(subscription.user, subscription.item, neighbours)


def push_to_subscribers(
    neighbours: Neighbours, subscribers: Iterable[str]
) -> tuple[NeighbourPush, ...]:
    """Stage 3's fan-out of its current neighbour list to the users holding the item, sent
    after a change; several changes may share one fan-out."""
    return tuple(NeighbourPush(u, neighbours.item, neighbours.neighbours) for u in subscribers)


def apply_profile(
    state: ScoreState, profile: UserProfile, params: CfParams
) -> tuple[ScoreState, CfScores | None]:
    """Take the user's new profile; the new scores if they changed."""
    return _rescore(ScoreState(profile, state.lists, state.scores), params)


def apply_push(
    state: ScoreState, push: NeighbourPush, params: CfParams
) -> tuple[ScoreState, CfScores | None]:
    """Take a neighbour list pushed by stage 3; the new scores if they changed."""
    lists = dict(state.lists)
    if push.neighbours is None:
        lists.pop(push.item, None)
    else:
        lists[push.item] = push.neighbours
    return _rescore(ScoreState(state.profile, lists, state.scores), params)


def score_candidates(profile: UserProfile, lists: Mapping[str, Ranked], top: int) -> Ranked:
    """score(k) = sum over history items h of a_h * sim(h, k), k not in the history; top ``top``."""
    held = {item for item, _ in profile.weights}
    totals: dict[str, float] = {}
    for item, weight in profile.weights:
        for candidate, sim in lists.get(item, ()):
            if candidate not in held:
                totals[candidate] = totals.get(candidate, 0.0) + weight * sim
    return tuple(heapq.nsmallest(top, totals.items(), key=best_first))


def _rescore(state: ScoreState, params: CfParams) -> tuple[ScoreState, CfScores | None]:
    if state.profile is None:
        return state, None
    scores = score_candidates(state.profile, state.lists, params.candidates)
    if scores == state.scores:
        return state, None
    return ScoreState(state.profile, state.lists, scores), CfScores(state.profile.user, scores)
