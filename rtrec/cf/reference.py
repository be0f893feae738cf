"""The batch definition of online CF: what the streaming stages equal at quiescence.

This is the contract the Spark batch twin reproduces (docs/online_cf.md §7): fold stage 1 over
each user's events in arrival order, sum the deltas, then rank from the final sums.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rtrec.cf.history import CfEvent, UserState, apply_user_event, user_profile
from rtrec.cf.params import CfParams
from rtrec.cf.scores import score_candidates
from rtrec.cf.similarity import Ranked, rank_neighbours


@dataclass(frozen=True)
class CfResult:
    neighbours: dict[str, Ranked]  # item -> top-N neighbours (items without any left out)
    scores: dict[str, Ranked]  # user -> top candidates (users without any left out)
    norms: dict[str, float]  # n(i)
    cooccurrence: dict[str, dict[str, float]]  # c(i, j), both (i, j) and (j, i)
    # Items with more partners than max_partners: the stream pruned them, so its neighbours and
    # scores near these items depend on arrival interleaving and may differ from this result.
    capped: tuple[str, ...]


def compute_reference(events: Iterable[CfEvent], params: CfParams) -> CfResult:
    """Neighbours and scores from ``events`` given in each user's arrival order (how users
    interleave does not matter)."""
    users: dict[str, UserState] = {}
    norms: dict[str, float] = {}
    rows: dict[str, dict[str, float]] = {}
    for event in events:
        state, step = apply_user_event(users.get(event.user_id, UserState()), event, params)
        users[event.user_id] = state
        for delta in step.row_deltas:
            norms[delta.item] = norms.get(delta.item, 0.0) + delta.norm_delta
            row = rows.setdefault(delta.item, {})
            for partner, c in delta.pairs:
                row[partner] = row.get(partner, 0.0) + c
    neighbours: dict[str, Ranked] = {}
    for item, row in rows.items():
        partners = {p: (c, norms[p]) for p, c in row.items()}
        ranked = rank_neighbours(norms[item], partners, params.neighbours)
        if ranked:
            neighbours[item] = ranked
    scores: dict[str, Ranked] = {}
    for user, state in users.items():
        if state.clock is None:
            continue
        ranked = score_candidates(user_profile(user, state, params), neighbours, params.candidates)
        if ranked:
            scores[user] = ranked
    capped = tuple(sorted(i for i, row in rows.items() if len(row) > params.max_partners))
    return CfResult(neighbours, scores, norms, rows, capped)
