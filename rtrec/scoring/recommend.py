"""One user's list: candidates from every source, fused, filtered by the rules, one slot
explored, each item with its reason, the record stamped with the model version and a rec_id.
This is the whole per-request logic of the Flink scoring job, with the model's scores handed in
(the job batches model calls across users)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rtrec.scoring.ab import Arm, rec_id
from rtrec.scoring.candidates import (
    CF,
    CONTENT,
    MODEL,
    RECENT,
    TRENDING,
    Candidate,
    Reason,
    Source,
    ranked_candidates,
)
from rtrec.scoring.exploration import Mode, explore
from rtrec.scoring.fusion import fuse
from rtrec.scoring.rules import ItemInfo, Rules, apply_rules
from rtrec.scoring.signals import UserView

if TYPE_CHECKING:
    from rtrec.config.settings import ScoringSettings

NO_MODEL = "none"  # the version stamped when no model could score (none registered yet)


@dataclass(frozen=True, slots=True)
class RecommendedItem:
    item: str
    score: float
    source: Source | str
    reason: str


@dataclass(frozen=True, slots=True)
class Recommendation:
    user: str
    rec_id: str
    event_id: str
    event_ts: int
    model_version: str
    arm: Arm
    items: tuple[RecommendedItem, ...]


@dataclass(frozen=True)
class Policy:
    """The configured part of scoring (conf ``scoring``)."""

    k: int
    weights: Mapping[Source, float]
    rules: Rules
    exploration: Mode
    epsilon: float
    per_source: int  # candidates taken from each source
    # A user with at most this many items is new: what is trending in their context carries
    # ``cold_trending_weight`` (their own history says too little yet).
    cold_history: int = 1
    cold_trending_weight: float = 1.0


def scoring_policy(settings: ScoringSettings) -> Policy:
    rules = Rules(
        frozenset(settings.rebuyable_categories),
        settings.max_per_category,
        settings.min_price,
        settings.max_price,
    )
    return Policy(
        settings.k,
        {source: weight for source, weight in settings.weights.items()},
        rules,
        settings.exploration.mode,
        settings.exploration.epsilon,
        settings.per_source,
        settings.cold_start.max_history,
        settings.cold_start.trending_weight,
    )


@dataclass(frozen=True)
class Signals:
    """What the other sources propose for this request."""

    cf: Sequence[tuple[str, float]] = ()  # the user's latest online-CF scores
    model: Sequence[tuple[str, float]] = ()  # the deep model's top items
    trending: Sequence[tuple[str, float]] = ()  # trending in the user's context
    context: str = ""
    content: Sequence[tuple[str, float, str]] = ()  # (item, score, anchor item)
    ctr_counts: Mapping[str, tuple[int, int]] | None = None  # item -> impressions, clicks


def recent_candidates(view: UserView, limit: int) -> list[Candidate]:
    """The user's own recent items, the newest strongest (1 / rank): shoppers come back to
    what they just viewed or carted."""
    newest_first = list(dict.fromkeys(i.item for i in reversed(view.recent)))[:limit]
    return [
        Candidate(item, 1.0 / (rank + 1), Reason(RECENT, item))
        for rank, item in enumerate(newest_first)
    ]


def candidate_sources(
    view: UserView, signals: Signals, model_version: str, per_source: int
) -> dict[Source, list[Candidate]]:
    cf_anchor = view.recent[-1].item if view.recent else ""
    return {
        RECENT: recent_candidates(view, per_source),
        CF: ranked_candidates(CF, signals.cf[:per_source], cf_anchor),
        MODEL: ranked_candidates(MODEL, signals.model[:per_source], f"v{model_version}"),
        TRENDING: ranked_candidates(TRENDING, signals.trending[:per_source], signals.context),
        CONTENT: [
            Candidate(item, score, Reason(CONTENT, anchor))
            for item, score, anchor in signals.content[:per_source]
        ],
    }


def recommend(
    user: str,
    event_id: str,
    event_ts: int,
    view: UserView,
    signals: Signals,
    items: Mapping[str, ItemInfo],
    policy: Policy,
    model_version: str,
    arm: Arm,
) -> Recommendation:
    """The user's top ``policy.k`` after the rules, with one exploration slot. Deterministic:
    the exploration draw is seeded by the rec_id, so recomputing a request gives its list."""
    rid = rec_id(user, event_id)
    sources = candidate_sources(view, signals, model_version, policy.per_source)
    weights = dict(policy.weights)
    if len(view.recent) <= policy.cold_history:
        weights[TRENDING] = max(weights.get(TRENDING, 0.0), policy.cold_trending_weight)
    ranked = fuse(sources, weights)
    purchased = set(view.purchased)
    top = apply_rules(ranked, items, purchased, policy.rules, policy.k)
    shown = {s.item for s in top}
    pool = [
        s.item
        for s in ranked
        if s.item not in shown
        and policy.rules.allows(s.item, items.get(s.item, ItemInfo()), purchased)
    ]
    explored = explore(
        top, pool, signals.ctr_counts or {}, policy.exploration, policy.epsilon, random.Random(rid)
    )
    listed = tuple(
        RecommendedItem(s.item, round(s.score, 6), s.reason.source, s.reason.text())
        for s in explored
    )
    return Recommendation(user, rid, event_id, event_ts, model_version, arm, listed)
