"""Online CF core: hand-checked numbers, limits, bounds, eviction, and the quiescence property
the streaming decomposition relies on (docs/online_cf.md)."""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import pytest

from rtrec.cf import (
    CfEvent,
    CfParams,
    CfResult,
    NeighbourPush,
    Neighbours,
    NeighbourState,
    NormUpdate,
    Outcome,
    PartnerUpdate,
    Ranked,
    RowDelta,
    RowState,
    ScoreState,
    Subscription,
    UserProfile,
    UserState,
    apply_partner_update,
    apply_profile,
    apply_push,
    apply_row_delta,
    apply_user_event,
    compute_reference,
    flush_neighbours,
    flush_row,
    pair_kernel,
    push_on_subscription,
    push_to_subscribers,
    rank_neighbours,
    score_candidates,
)

pytestmark = pytest.mark.unit

SMALL = CfParams(history_size=4, decay_ms=1000, history_ttl_ms=10_000)


def ev(event_id: str, user: str, item: str, kind: str, ts: int) -> CfEvent:
    return CfEvent(event_id, user, item, kind, ts)


def fold(events: Sequence[CfEvent], params: CfParams = SMALL) -> tuple[UserState, list[Outcome]]:
    state = UserState()
    outcomes = []
    for e in events:
        state, step = apply_user_event(state, e, params)
        outcomes.append(step.outcome)
    return state, outcomes


# --- hand-checked examples -------------------------------------------------------------------


def test_three_events_hand_checked() -> None:
    # H = 4, decay 1 s, TTL 10 s. u: view A @0 (w 1), click B @1000 (w 2), add_to_cart A @2000
    # (w 4). Kernel k(dp, dt) = (1 - dp/4) * exp(-dt/1000) * (1 - dt/10000):
    #   k(1, 1000) = 0.75 * e^-1 * 0.9 = 0.248319    k(2, 2000) = 0.5 * e^-2 * 0.8 = 0.054134
    # e2 (B): pairs with A@0:  c(A,B) += 2*1*k(1,1000) = 0.496637;  n(B) += 2^2 = 4
    # e3 (A): pairs with B@1000: c(A,B) += 4*2*k(1,1000) = 1.986549
    #         same item A@0:     n(A) += 4^2 + 2*4*1*k(2,2000) = 16.433073
    # c(A,B) = 10 * 0.248319 = 2.483186;  n(A) = 1 + 16.433073 = 17.433073;  n(B) = 4
    # sim(A,B) = 2.483186 / sqrt(17.433073 * 4) = 0.297367
    events = [
        ev("e1", "u", "A", "view", 0),
        ev("e2", "u", "B", "click", 1000),
        ev("e3", "u", "A", "add_to_cart", 2000),
    ]
    result = compute_reference(events, SMALL)
    assert result.cooccurrence == {
        "A": {"B": pytest.approx(2.483186, abs=1e-6)},
        "B": {"A": pytest.approx(2.483186, abs=1e-6)},
    }
    assert result.norms == {"A": pytest.approx(17.433073, abs=1e-6), "B": 4.0}
    assert result.neighbours == {
        "A": (("B", pytest.approx(0.297367, abs=1e-6)),),
        "B": (("A", pytest.approx(0.297367, abs=1e-6)),),
    }
    # The user holds both items, so there is nothing left to recommend.
    assert result.scores == {}


def test_user_step_messages_hand_checked() -> None:
    state, _ = fold([ev("e1", "u", "A", "view", 0), ev("e2", "u", "B", "click", 1000)])
    state, step = apply_user_event(state, ev("e3", "u", "A", "add_to_cart", 2000), SMALL)
    k1 = 0.75 * math.exp(-1) * 0.9
    k2 = 0.5 * math.exp(-2) * 0.8
    assert step.outcome is Outcome.APPLIED
    # One delta for the event's item (norm + all pairs), one per partner (the mirror pair).
    assert step.row_deltas == (
        RowDelta("A", pytest.approx(16 + 8 * k2), (("B", pytest.approx(8 * k1)),)),
        RowDelta("B", 0.0, (("A", pytest.approx(8 * k1)),)),
    )
    assert step.subscriptions == ()  # A and B were already held
    # Profile at clock 2000: a_A = 1*e^-2 + 4*e^0 = 4.135335, a_B = 2*e^-1 = 0.735759.
    assert step.profile == UserProfile(
        "u", 2000, (("A", pytest.approx(4.135335, abs=1e-6)), ("B", pytest.approx(0.735759, 1e-6)))
    )
    assert [e.item for e in state.history] == ["A", "B", "A"]


def test_scores_hand_checked() -> None:
    # u1 views A and B at the same instant; u2 views A @0 and C @5000 (H = 4, decay 1 s).
    #   n(A) = 1 + 1 = 2, n(B) = n(C) = 1
    #   c(A,B) = k(1, 0) = 0.75                  sim(A,B) = 0.75 / sqrt(2) = 0.530330
    #   c(A,C) = k(1, 5000) = 0.75 * e^-5 * 0.5 = 0.002527    sim(A,C) = 0.001787
    # u2 at clock 5000: a_A = e^-5 = 0.006738, a_C = 1; A and C are held, B is A's neighbour:
    #   score(B) = 0.006738 * 0.530330 = 0.003573
    # u1 at clock 0: a_A = a_B = 1; C is A's neighbour: score(C) = 1 * 0.001787
    events = [
        ev("a1", "u1", "A", "view", 0),
        ev("a2", "u1", "B", "view", 0),
        ev("b1", "u2", "A", "view", 0),
        ev("b2", "u2", "C", "view", 5000),
    ]
    result = compute_reference(events, SMALL)
    assert dict(result.neighbours["A"]) == {
        "B": pytest.approx(0.530330, abs=1e-6),
        "C": pytest.approx(0.001787, abs=1e-6),
    }
    assert result.scores == {
        "u1": (("C", pytest.approx(0.001787, abs=1e-6)),),
        "u2": (("B", pytest.approx(0.003573, abs=1e-6)),),
    }


def test_score_candidates_sum_over_history_and_rank() -> None:
    profile = UserProfile("u", 0, (("h1", 2.0), ("h2", 1.0)))
    lists: dict[str, Ranked] = {
        "h1": (("k1", 0.5), ("k2", 0.1), ("h2", 0.9)),
        "h2": (("k2", 0.6), ("k3", 0.2)),
    }
    # k1 = 2*0.5 = 1.0; k2 = 2*0.1 + 1*0.6 = 0.8; k3 = 0.2; h2 is held so not a candidate.
    assert score_candidates(profile, lists, 2) == (
        ("k1", pytest.approx(1.0)),
        ("k2", pytest.approx(0.8)),
    )


# --- limits and bounds -----------------------------------------------------------------------


def test_kernel_is_zero_exactly_where_an_entry_leaves_the_history() -> None:
    assert pair_kernel(0, 0, SMALL) == 1.0
    assert pair_kernel(3, 0, SMALL) == pytest.approx(0.25)
    assert pair_kernel(4, 0, SMALL) == 0.0  # the 5th-last entry of a history of 4
    assert pair_kernel(1, 9_999, SMALL) > 0.0
    assert pair_kernel(1, 10_000, SMALL) == 0.0  # TTL


def test_kernel_gram_matrices_are_positive_semidefinite() -> None:
    # The cosine bound rests on this (docs/online_cf.md §3): check the smallest eigenvalue of
    # Gram matrices of random event sequences by Cholesky with a tiny ridge.
    rng = random.Random(7)
    for _ in range(30):
        m = 12
        times = sorted(rng.randrange(0, 12_000) for _ in range(m))
        gram = [
            [pair_kernel(abs(a - b), abs(times[a] - times[b]), SMALL) for b in range(m)]
            for a in range(m)
        ]
        assert _is_positive_semidefinite(gram)


def test_identical_profiles_tend_to_similarity_one() -> None:
    # One user touching A then B at the same instant: sim = k(1, 0) = 1 - 1/H, which tends to
    # 1 as the history grows; it is never 1 for two different items because two events always
    # sit at different positions (docs/online_cf.md §3).
    for size in (2, 10, 1000):
        params = replace(SMALL, history_size=size)
        events = [ev("1", "u", "A", "purchase", 0), ev("2", "u", "B", "view", 0)]
        ((_, sim),) = compute_reference(events, params).neighbours["A"]
        assert sim == pytest.approx(1 - 1 / size)


def test_items_with_mirrored_profiles_have_equal_similarities() -> None:
    # u1 touches A, B, C and u2 touches B, A, C with the same timing: swapping A and B maps the
    # data onto itself, so A and B must relate to C identically.
    events: list[CfEvent] = []
    for user, first, second in (("u1", "A", "B"), ("u2", "B", "A")):
        events += [
            ev(f"{user}1", user, first, "view", 0),
            ev(f"{user}2", user, second, "view", 400),
            ev(f"{user}3", user, "C", "click", 900),
        ]
    result = compute_reference(events, SMALL)
    sims = {i: dict(result.neighbours[i]) for i in "ABC"}
    assert sims["A"]["C"] == pytest.approx(sims["B"]["C"], rel=1e-12)
    assert sims["C"]["A"] == pytest.approx(sims["C"]["B"], rel=1e-12)
    assert result.norms["A"] == pytest.approx(result.norms["B"], rel=1e-12)


def test_similarity_is_symmetric_and_within_zero_one_even_for_adversarial_patterns() -> None:
    # Alternating A B A B ... in a short history is where plain windowed counts exceed 1
    # (docs/online_cf.md §3); weights vary so the pattern is not symmetric.
    params = replace(SMALL, history_size=2)
    kinds = ("view", "purchase", "click", "add_to_cart")
    events = [ev(str(n), "u", "AB"[n % 2], kinds[n % 4], 10 * n) for n in range(40)]
    _assert_bounded_and_symmetric(compute_reference(events, params))
    _assert_bounded_and_symmetric(compute_reference(_random_events(3, 400), SMALL))


def test_reference_does_not_depend_on_how_users_interleave() -> None:
    events = _random_events(11, 300)
    a = compute_reference(events, SMALL)
    rng = random.Random(1)
    b = compute_reference(_shuffle_users(events, rng), SMALL)
    _assert_same(a, b)
    assert compute_reference(events, SMALL) == a  # deterministic: identical, not just close


# --- the user stage: weights, duplicates, lateness, eviction ----------------------------------


def test_zero_weight_events_change_nothing() -> None:
    state, _ = fold([ev("1", "u", "A", "view", 0)])
    for kind in ("impression", "remove_from_cart"):
        after, step = apply_user_event(state, ev("2", "u", "B", kind, 10), SMALL)
        assert after is state
        assert step.outcome is Outcome.ZERO_WEIGHT and step.row_deltas == ()


def test_a_resent_event_is_ignored() -> None:
    state, outcomes = fold(
        [ev("1", "u", "A", "view", 0), ev("2", "u", "B", "view", 5), ev("1", "u", "A", "view", 0)]
    )
    assert outcomes == [Outcome.APPLIED, Outcome.APPLIED, Outcome.DUPLICATE]
    assert [e.item for e in state.history] == ["A", "B"]


def test_dedup_memory_is_bounded_by_size_and_ttl() -> None:
    params = replace(SMALL, dedup_size=3)
    state, _ = fold([ev(str(n), "u", "A", "view", n) for n in range(5)], params)
    assert state.seen is not None and list(state.seen) == ["2", "3", "4"]
    # An id past the TTL has left the memory, and a re-send of it is late anyway.
    state, _ = fold([ev("1", "u", "A", "view", 0), ev("2", "u", "A", "view", 10_000)])
    assert state.seen is not None and list(state.seen) == ["2"]
    _, step = apply_user_event(state, ev("1", "u", "A", "view", 0), SMALL)
    assert step.outcome is Outcome.LATE


def test_late_events_inside_the_ttl_are_applied_at_the_users_clock() -> None:
    state, outcomes = fold(
        [ev("1", "u", "A", "view", 5000), ev("2", "u", "B", "view", 1000)]  # 4 s late
    )
    assert outcomes == [Outcome.APPLIED, Outcome.APPLIED]
    assert [(e.item, e.ts) for e in state.history] == [("A", 5000), ("B", 5000)]
    _, outcomes = fold([ev("1", "u", "A", "view", 20_000), ev("2", "u", "B", "view", 10_000)])
    assert outcomes == [Outcome.APPLIED, Outcome.LATE]  # exactly one TTL behind


def test_history_is_bounded_by_size_and_ttl() -> None:
    state, _ = fold([ev(str(n), "u", f"i{n}", "view", n) for n in range(10)])
    assert [e.item for e in state.history] == ["i6", "i7", "i8", "i9"]  # history_size 4
    state, _ = fold(
        [
            ev("1", "u", "A", "view", 0),
            ev("2", "u", "B", "view", 1),
            ev("3", "u", "C", "view", 10_001),
        ]
    )
    assert [e.item for e in state.history] == ["C"]  # A and B are over 10 s old


def test_subscriptions_follow_the_distinct_items_of_the_history() -> None:
    state, _ = fold([ev(str(n), "u", f"i{n}", "view", n) for n in range(4)])
    _, step = apply_user_event(state, ev("x", "u", "new", "view", 10), SMALL)
    assert step.subscriptions == (Subscription("new", "u", True), Subscription("i0", "u", False))
    # Touching an item that is already held changes no subscription.
    state, step = apply_user_event(state, ev("y", "u", "i3", "view", 10), SMALL)
    assert step.subscriptions == (Subscription("i0", "u", False),)


# --- the item stages -------------------------------------------------------------------------


def test_row_stage_tells_changed_partners_now_and_all_partners_at_the_flush() -> None:
    state = RowState(1.0, {"B": 2.0, "C": 1.0})
    state, messages = apply_row_delta(state, RowDelta("A", 3.0, (("C", 0.5),)), SMALL)
    assert state == RowState(4.0, {"B": 2.0, "C": 1.5}, norm_moved=True)
    assert messages == (NormUpdate("A", 4.0), PartnerUpdate("C", "A", 1.5, 4.0))
    # B still holds n(A) = 1 until the flush tells every partner the current values.
    state, messages = apply_row_delta(state, RowDelta("A", 0.0, (("B", 1.0),)), SMALL)
    assert messages == (PartnerUpdate("B", "A", 3.0, 4.0),)
    state, messages = flush_row("A", state)
    assert messages == (PartnerUpdate("B", "A", 3.0, 4.0), PartnerUpdate("C", "A", 1.5, 4.0))
    assert flush_row("A", state) == (state, ())  # nothing moved since


def test_row_stage_keeps_the_largest_partners_and_withdraws_the_pruned() -> None:
    params = replace(SMALL, max_partners=2, neighbours=2)
    state = RowState(1.0, {"B": 2.0, "C": 1.0})
    state, messages = apply_row_delta(state, RowDelta("A", 0.0, (("D", 1.5), ("E", 0.5))), params)
    assert state.row == {"B": 2.0, "D": 1.5}
    # E never reached a partner's stage 3, so only C is withdrawn.
    assert messages == (PartnerUpdate("D", "A", 1.5, 1.0), PartnerUpdate("C", "A", 0.0, 1.0))
    # Ties keep the smaller id.
    state, _ = apply_row_delta(RowState(1.0, {"B": 1.0}), RowDelta("A", 0, (("C", 1.0),)), params)
    state, _ = apply_row_delta(state, RowDelta("A", 0.0, (("D", 1.0),)), params)
    assert set(state.row) == {"B", "C"}


def test_neighbour_stage_ranks_by_cosine_and_publishes_only_changes() -> None:
    state = NeighbourState()
    state = apply_partner_update(state, PartnerUpdate("A", "B", 2.0, 4.0), SMALL)
    assert state.neighbours == ()  # own norm unknown yet
    state = apply_partner_update(state, NormUpdate("A", 1.0), SMALL)
    assert state.neighbours == (("B", 1.0),)  # 2 / sqrt(1 * 4)
    state = apply_partner_update(state, PartnerUpdate("A", "C", 1.0, 1.0), SMALL)
    assert state.neighbours == (("B", 1.0), ("C", 1.0))  # a tie: by id
    state, out = flush_neighbours("A", state)
    assert out == Neighbours("A", (("B", 1.0), ("C", 1.0)))
    state = apply_partner_update(state, PartnerUpdate("A", "C", 1.0, 1.0), SMALL)
    assert flush_neighbours("A", state) == (state, None)  # nothing changed
    state = apply_partner_update(state, PartnerUpdate("A", "B", 0.0, 4.0), SMALL)
    state = apply_partner_update(state, PartnerUpdate("A", "C", 0.0, 1.0), SMALL)
    state, out = flush_neighbours("A", state)
    assert out == Neighbours("A", ()) and state.partners == {}


def test_neighbour_stage_skips_re_ranking_only_when_the_ranking_cannot_change() -> None:
    params = replace(SMALL, neighbours=2)
    state = NeighbourState(norm=1.0)
    for partner, c in (("B", 3.0), ("C", 2.0), ("D", 1.0)):
        state = apply_partner_update(state, PartnerUpdate("A", partner, c, 1.0), params)
    assert state.neighbours == (("B", 3.0), ("C", 2.0))
    for update in (
        PartnerUpdate("A", "D", 1.5, 1.0),  # stays below C: skipped, still right
        PartnerUpdate("A", "E", 2.5, 1.0),  # enters
        PartnerUpdate("A", "B", 0.0, 1.0),  # a member leaves
        PartnerUpdate("A", "D", 2.0, 1.0),  # ties C, loses on id
        NormUpdate("A", 4.0),  # all sims halve
    ):
        state = apply_partner_update(state, update, params)
        assert state.neighbours == rank_neighbours(state.norm, state.partners, 2)
    assert state.neighbours == (("E", 1.25), ("C", 1.0))


def test_neighbour_stage_bounds_its_partners() -> None:
    params = replace(SMALL, max_partners=2, neighbours=1)
    state = NeighbourState(norm=1.0)
    for partner, c in (("B", 1.0), ("C", 3.0), ("D", 2.0)):
        state = apply_partner_update(state, PartnerUpdate("A", partner, c, 1.0), params)
    assert set(state.partners) == {"C", "D"}
    assert state.neighbours == (("C", 3.0),)


def test_subscription_pushes_and_score_stage() -> None:
    current: Ranked = (("B", 0.5),)
    assert push_on_subscription(Subscription("A", "u", True), current) == NeighbourPush(
        "u", "A", current
    )
    assert push_on_subscription(Subscription("A", "u", False), current).neighbours is None
    pushes = push_to_subscribers(Neighbours("A", current), ["u", "v"])
    assert [p.user for p in pushes] == ["u", "v"]

    state, out = apply_push(ScoreState(), NeighbourPush("u", "A", current), SMALL)
    assert out is None  # no profile yet
    state, out = apply_profile(state, UserProfile("u", 0, (("A", 2.0),)), SMALL)
    assert out is not None and out.scores == (("B", 1.0),)
    state, out = apply_push(state, NeighbourPush("u", "A", None), SMALL)
    assert out is not None and out.scores == () and state.lists == {}


def test_params_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown event types: like"):
        CfParams(weights={"like": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        CfParams(weights={"view": -1.0})
    with pytest.raises(ValueError, match="history_size"):
        CfParams(history_size=0)
    with pytest.raises(ValueError, match="max_partners must be >= neighbours"):
        CfParams(max_partners=5, neighbours=10)
    weights = {"view": 1.0}
    params = CfParams(weights=weights)
    weights["view"] = 9.0
    assert params.weight("view") == 1.0 and params.weight("click") == 0.0


# --- quiescence: the property the streaming decomposition relies on ---------------------------


@dataclass
class Network:
    """The four stages as keyed actors joined by FIFO channels, one per (sender key, receiver
    key), delivered in an order chosen by ``pick``: weaker than Flink's guarantee of order per
    pair of subtasks, so anything that holds here holds there. The coalesced fan-outs are
    actions the scheduler may pick at any time (the job runs them on an event-time timer):
    ("row", i) runs flush_row for an item whose norm moved, ("item", i) flush_neighbours for an
    item whose ranking changed. Quiescence: no events, messages or flushes left."""

    params: CfParams
    pending: dict[str, deque[CfEvent]]
    channels: dict[tuple[str, str, str], deque[object]] = field(default_factory=dict)
    users: dict[str, UserState] = field(default_factory=dict)
    rows: dict[str, RowState] = field(default_factory=dict)
    items: dict[str, NeighbourState] = field(default_factory=dict)
    subscribers: dict[str, set[str]] = field(default_factory=dict)
    scores: dict[str, ScoreState] = field(default_factory=dict)
    neighbours_out: dict[str, Ranked] = field(default_factory=dict)
    scores_out: dict[str, Ranked] = field(default_factory=dict)

    def send(self, stage: str, sender: str, receiver: str, message: object) -> None:
        self.channels.setdefault((stage, sender, receiver), deque()).append(message)

    def run(self, pick: Callable[[list[tuple[str, ...]]], tuple[str, ...]]) -> CfResult:
        while True:
            ready = [("event", u) for u, q in self.pending.items() if q]
            ready += [("row", i) for i, r in self.rows.items() if r.norm_moved]
            ready += [("item", i) for i, n in self.items.items() if n.neighbours != n.published]
            ready += [k for k, q in self.channels.items() if q]
            if not ready:
                break
            choice = pick(sorted(ready))
            if choice[0] == "event":
                self.step_user(self.pending[choice[1]].popleft())
            elif choice[0] == "row":
                self.rows[choice[1]], updates = flush_row(choice[1], self.rows[choice[1]])
                for m in updates:
                    self.send("items", "item:" + choice[1], m.item, m)
            elif choice[0] == "item":
                self.flush_item(choice[1])
            else:
                stage, sender, receiver = choice
                self.deliver(stage, receiver, self.channels[stage, sender, receiver].popleft())
        neighbours = {k: v for k, v in self.neighbours_out.items() if v}
        scores = {k: v for k, v in self.scores_out.items() if v}
        return CfResult(neighbours, scores, {}, {}, ())

    def step_user(self, event: CfEvent) -> None:
        u = event.user_id
        self.users[u], step = apply_user_event(self.users.get(u, UserState()), event, self.params)
        for delta in step.row_deltas:
            self.send("rows", u, delta.item, delta)
        for sub in step.subscriptions:
            self.send("items", "user:" + u, sub.item, sub)
        if step.profile is not None:
            self.send("scores", "user:" + u, u, step.profile)

    def deliver(self, stage: str, key: str, message: object) -> None:
        p = self.params
        if stage == "rows":
            assert isinstance(message, RowDelta)
            self.rows[key], out = apply_row_delta(self.rows.get(key, RowState()), message, p)
            for m in out:
                self.send("items", "item:" + key, m.item, m)
        elif stage == "items" and isinstance(message, Subscription):
            subs = self.subscribers.setdefault(key, set())
            (subs.add if message.active else subs.discard)(message.user)
            current = self.items.get(key, NeighbourState()).neighbours
            push = push_on_subscription(message, current)
            self.send("scores", "item:" + key, push.user, push)
        elif stage == "items":
            assert isinstance(message, PartnerUpdate | NormUpdate)
            self.items[key] = apply_partner_update(
                self.items.get(key, NeighbourState()), message, p
            )
        else:
            state = self.scores.get(key, ScoreState())
            if isinstance(message, UserProfile):
                self.scores[key], result = apply_profile(state, message, p)
            else:
                assert isinstance(message, NeighbourPush)
                self.scores[key], result = apply_push(state, message, p)
            if result is not None:
                self.scores_out[key] = result.scores

    def flush_item(self, key: str) -> None:
        self.items[key], changed = flush_neighbours(key, self.items[key])
        assert changed is not None
        self.neighbours_out[key] = changed.neighbours
        for push in push_to_subscribers(changed, sorted(self.subscribers.get(key, ()))):
            self.send("scores", "item:" + key, push.user, push)


def _network(events: Sequence[CfEvent], params: CfParams) -> Network:
    pending: dict[str, deque[CfEvent]] = {}
    for e in events:
        pending.setdefault(e.user_id, deque()).append(e)
    return Network(params, pending)


@pytest.mark.parametrize("seed", range(8))
def test_streaming_stages_equal_the_reference_at_quiescence(seed: int) -> None:
    params = replace(SMALL, history_size=6, neighbours=3, candidates=4)
    events = _random_events(seed, 250)
    reference = compute_reference(events, params)
    assert reference.capped == ()  # no pruning, so equality must be exact up to rounding
    rng = random.Random(seed)
    streamed = _network(events, params).run(rng.choice)
    _assert_same(streamed, reference)
    # Depth-first (every message delivered as early as possible) reaches the same point.
    _assert_same(_network(events, params).run(lambda ready: ready[-1]), reference)


def test_pruning_keeps_every_stage_bounded() -> None:
    params = replace(SMALL, history_size=6, max_partners=3, neighbours=2)
    events = _random_events(5, 400)
    assert compute_reference(events, params).capped  # the caps are really exercised
    network = _network(events, params)
    network.run(random.Random(5).choice)
    assert all(len(s.row) <= 3 for s in network.rows.values())
    assert all(len(s.partners) <= 3 for s in network.items.values())
    assert all(len(n) <= 2 for n in network.neighbours_out.values())
    assert all(len(s.history) <= 6 for s in network.users.values())
    # Stage 4 holds lists only for items still in the user's history (tombstones did their job).
    for s in network.scores.values():
        assert s.profile is not None and s.lists.keys() <= {i for i, _ in s.profile.weights}


# --- helpers ---------------------------------------------------------------------------------


def _random_events(seed: int, count: int) -> list[CfEvent]:
    """Events of a few users over a small catalogue, with re-sends, impressions and late ones."""
    rng = random.Random(seed)
    kinds = ("view", "view", "view", "click", "add_to_cart", "purchase", "impression")
    clocks = dict.fromkeys((f"u{n}" for n in range(6)), 0)
    events: list[CfEvent] = []
    for n in range(count):
        user = rng.choice(sorted(clocks))
        clocks[user] += rng.randrange(0, 3000)
        ts = clocks[user] - (rng.randrange(0, 12_000) if rng.random() < 0.05 else 0)
        events.append(ev(f"e{n}", user, f"i{rng.randrange(12)}", rng.choice(kinds), max(ts, 0)))
        if rng.random() < 0.05:
            events.append(events[rng.randrange(len(events))])  # a re-send, maybe of another user
    # A re-send goes to its own user's stream: keep each user's arrival order.
    return events


def _shuffle_users(events: Sequence[CfEvent], rng: random.Random) -> list[CfEvent]:
    queues: dict[str, deque[CfEvent]] = {}
    for e in events:
        queues.setdefault(e.user_id, deque()).append(e)
    out = []
    while any(queues.values()):
        user = rng.choice(sorted(u for u, q in queues.items() if q))
        out.append(queues[user].popleft())
    return out


def _assert_same(a: CfResult, b: CfResult) -> None:
    for got, want in ((a.neighbours, b.neighbours), (a.scores, b.scores)):
        assert got.keys() == want.keys()
        for key, ranked in want.items():
            assert [k for k, _ in got[key]] == [k for k, _ in ranked], key
            assert [v for _, v in got[key]] == pytest.approx([v for _, v in ranked], rel=1e-9)


def _assert_bounded_and_symmetric(result: CfResult) -> None:
    c, n = result.cooccurrence, result.norms
    for i, row in c.items():
        for j, value in row.items():
            assert c[j][i] == pytest.approx(value, rel=1e-12)
            assert 0.0 < value / math.sqrt(n[i] * n[j]) <= 1.0 + 1e-12


def _is_positive_semidefinite(matrix: list[list[float]]) -> bool:
    m = len(matrix)
    lower = [[0.0] * m for _ in range(m)]
    for i in range(m):
        for j in range(i + 1):
            s = (
                matrix[i][j]
                + (1e-9 if i == j else 0.0)
                - sum(lower[i][k] * lower[j][k] for k in range(j))
            )
            if i == j:
                if s <= 0.0:
                    return False
                lower[i][i] = math.sqrt(s)
            else:
                lower[i][j] = s / lower[j][j]
    return True
