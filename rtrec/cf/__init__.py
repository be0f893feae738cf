"""Online item-item collaborative filtering as plain functions (docs/online_cf.md).

Four stages, each a deterministic function of its own key's state and one message:
``apply_user_event`` (by user), ``apply_row_delta`` + ``flush_row`` (by item),
``apply_partner_update`` + ``flush_neighbours`` with the subscription pushes (by item) and
``apply_profile`` / ``apply_push`` (by user).
``compute_reference`` is the batch definition they equal at quiescence.
"""

from rtrec.cf.history import (
    CfEvent,
    HistoryEntry,
    Outcome,
    RowDelta,
    Subscription,
    UserProfile,
    UserState,
    UserStep,
    apply_user_event,
    pair_kernel,
    user_profile,
)
from rtrec.cf.params import DEFAULT_WEIGHTS, CfParams, cf_params
from rtrec.cf.reference import CfResult, compute_reference
from rtrec.cf.scores import (
    CfScores,
    NeighbourPush,
    ScoreState,
    apply_profile,
    apply_push,
    push_on_subscription,
    push_to_subscribers,
    score_candidates,
)
from rtrec.cf.similarity import (
    Neighbours,
    NeighbourState,
    NormUpdate,
    PartnerUpdate,
    Ranked,
    RowState,
    apply_partner_update,
    apply_row_delta,
    flush_neighbours,
    flush_row,
    rank_neighbours,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "CfEvent",
    "CfParams",
    "CfResult",
    "CfScores",
    "HistoryEntry",
    "NeighbourPush",
    "NeighbourState",
    "Neighbours",
    "NormUpdate",
    "Outcome",
    "PartnerUpdate",
    "Ranked",
    "RowDelta",
    "RowState",
    "ScoreState",
    "Subscription",
    "UserProfile",
    "UserState",
    "UserStep",
    "apply_partner_update",
    "apply_profile",
    "apply_push",
    "apply_row_delta",
    "apply_user_event",
    "cf_params",
    "compute_reference",
    "flush_neighbours",
    "flush_row",
    "pair_kernel",
    "push_on_subscription",
    "push_to_subscribers",
    "rank_neighbours",
    "score_candidates",
    "user_profile",
]
