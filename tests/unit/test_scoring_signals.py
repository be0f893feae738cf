"""The scoring job's signals (recent behaviour, decayed trending counts, content neighbours)
and the per-request list, including both cold starts, as pure functions."""

from __future__ import annotations

import pytest

from rtrec.scoring.ab import CHAMPION_ARM, rec_id
from rtrec.scoring.candidates import CF, CONTENT, EXPLORE, MODEL, RECENT, TRENDING
from rtrec.scoring.recommend import NO_MODEL, Policy, Signals, recommend
from rtrec.scoring.rules import ItemInfo, Rules
from rtrec.scoring.signals import (
    HOUR_MS,
    DecayedCounts,
    Interaction,
    UserView,
    content_neighbours,
    context_of,
    merge_facts,
)

pytestmark = pytest.mark.unit

POLICY = Policy(
    k=4,
    weights={RECENT: 0.5, CF: 1.0, MODEL: 1.0, TRENDING: 0.3, CONTENT: 0.5},
    rules=Rules(max_per_category=3),
    exploration="off",
    epsilon=0.0,
    per_source=20,
)


def seen(
    item: str, ts: int = 0, kind: str = "view", category: str = "c", price: float = 10.0
) -> Interaction:
    return Interaction(item, kind, ts, category, price)


def test_context_is_device_and_part_of_day() -> None:
    assert context_of("mobile", 19 * HOUR_MS) == "mobile, evening"
    assert context_of(None, 24 * HOUR_MS + 3 * HOUR_MS) == "any device, night"


def test_the_user_view_is_bounded_and_remembers_purchases() -> None:
    view = UserView()
    for n, item in enumerate(["a", "a", "b", "c", "d"]):
        view = view.observe(seen(item, n), keep_recent=3, keep_purchased=2)
    assert view.history() == ["b", "c", "d"]  # the repeat of a collapsed, then bounded
    for item in ["x", "y", "z"]:
        view = view.observe(seen(item, kind="purchase"), keep_recent=3, keep_purchased=2)
    assert view.purchased == ("y", "z")


def test_decayed_counts_halve_per_half_life_and_stay_bounded() -> None:
    counts = DecayedCounts(half_life_ms=1_000, capacity=2)
    counts.add("old", 1.0, 0)
    counts.add("new", 1.0, 1_000)
    assert counts.top(5) == [("new", pytest.approx(1.0)), ("old", pytest.approx(0.5))]
    counts.add("new", 2.0, 2_000)  # 1 halved, plus 2
    assert counts.count("new") == pytest.approx(2.5) and counts.count("old") == 0.25
    counts.add("third", 0.1, 2_000)
    counts.add("fourth", 0.1, 2_000)  # four keys: pruned to the two strongest
    assert set(counts.values) == {"new", "old"}
    counts.add("ignored", 0.0, 2_000)
    assert "ignored" not in counts.values


def test_content_neighbours_prefer_the_same_category_and_a_close_price() -> None:
    by_category = {"shoes": DecayedCounts(HOUR_MS, 100), "hats": DecayedCounts(HOUR_MS, 100)}
    facts = {}
    for item, price, category in [
        ("boot", 100.0, "shoes"),
        ("sneaker", 90.0, "shoes"),  # close in price
        ("slipper", 10.0, "shoes"),  # far in price, same popularity
        ("cap", 95.0, "hats"),  # close in price, another category
    ]:
        by_category[category].add(item, 1.0, 0)
        facts[item] = merge_facts(ItemInfo(), category, price)
    found = content_neighbours([seen("boot", category="shoes", price=100.0)], by_category, facts, 5)
    assert [(item, anchor) for item, _, anchor in found] == [
        ("sneaker", "boot"),
        ("slipper", "boot"),
    ]
    assert content_neighbours([seen("x", category="none")], by_category, facts, 5) == []
    assert merge_facts(ItemInfo("shoes", 5.0), None, 6.0) == ItemInfo("shoes", 6.0)


def test_a_new_user_gets_what_is_trending_in_their_context() -> None:
    signals = Signals(trending=[("t1", 9.0), ("t2", 5.0)], context="mobile, evening")
    rec = recommend("new", "e1", 5, UserView(), signals, {}, POLICY, NO_MODEL, CHAMPION_ARM)
    assert [i.item for i in rec.items] == ["t1", "t2"]
    assert rec.items[0].reason == "trending in mobile, evening" and rec.items[0].source == TRENDING
    assert (rec.model_version, rec.rec_id, rec.arm) == (NO_MODEL, rec_id("new", "e1"), "champion")


def test_a_user_with_one_item_sees_trending_first_even_when_the_model_has_candidates() -> None:
    view = UserView().observe(seen("shoe"), 10, 10)
    signals = Signals(
        model=[("m1", 3.0), ("m2", 2.9), ("m3", 0.0)],
        trending=[("t1", 9.0)],
        context="mobile, evening",
    )
    cold = Policy(2, {MODEL: 1.0, TRENDING: 0.3}, Rules(), "off", 0.0, 10, 1, 2.0)
    rec = recommend("u", "e", 0, view, signals, {}, cold, "3", CHAMPION_ARM)
    assert [i.item for i in rec.items] == ["t1", "m1"]
    # With a second item the user is no longer new: the configured weights apply.
    warm_view = view.observe(seen("sock", 1), 10, 10)
    warm = recommend("u", "e", 0, warm_view, signals, {}, cold, "3", CHAMPION_ARM)
    assert [i.item for i in warm.items] == ["m1", "m2"]


def test_a_list_fuses_the_sources_applies_the_rules_and_explains_itself() -> None:
    view = UserView()
    for n, item in enumerate(["shoe", "sock"]):
        view = view.observe(seen(item, n), keep_recent=10, keep_purchased=10)
    view = view.observe(seen("belt", 3, kind="purchase"), keep_recent=10, keep_purchased=10)
    signals = Signals(
        cf=[("lace", 0.9), ("belt", 0.8), ("polish", 0.1)],
        model=[("insole", 4.0), ("lace", 3.0), ("sock", -1.0)],
        trending=[("umbrella", 50.0)],
        context="desktop, morning",
        content=[("new-boot", 0.5, "shoe")],
    )
    items = {"belt": ItemInfo("accessories", 20.0)}
    rec = recommend("u1", "e9", 3, view, signals, items, POLICY, "7", CHAMPION_ARM)
    listed = {i.item: i for i in rec.items}
    assert len(rec.items) == POLICY.k and rec.model_version == "7"
    assert "belt" not in listed  # bought, and accessories are not re-buyable
    assert listed["lace"].source in (CF, MODEL)  # both propose it; the stronger explains it
    assert listed["insole"].reason == "picked for you by model v7"
    # Recomputing the same request gives the same record (a restore re-emits it unchanged).
    again = recommend("u1", "e9", 3, view, signals, items, POLICY, "7", CHAMPION_ARM)
    assert again == rec
    rebuy = Rules(frozenset({"accessories"}))
    policy = Policy(POLICY.k, POLICY.weights, rebuy, "off", 0.0, POLICY.per_source)
    assert "belt" in {
        i.item
        for i in recommend("u1", "e9", 3, view, signals, items, policy, "7", CHAMPION_ARM).items
    }


def test_a_new_item_reaches_a_list_through_content_neighbours() -> None:
    view = UserView().observe(seen("boot", category="shoes", price=100.0), 10, 10)
    signals = Signals(content=[("brand-new-boot", 0.4, "boot")])
    policy = Policy(2, {CONTENT: 1.0}, Rules(), "off", 0.0, 10)
    rec = recommend("u", "e", 0, view, signals, {}, policy, NO_MODEL, CHAMPION_ARM)
    assert [(i.item, i.reason) for i in rec.items] == [("brand-new-boot", "similar to boot")]


def test_the_exploration_slot_is_last_and_says_so() -> None:
    signals = Signals(trending=[(f"t{n}", 10.0 - n) for n in range(8)], context="c")
    policy = Policy(3, {TRENDING: 1.0}, Rules(), "epsilon", 1.0, 10)
    rec = recommend("u", "e", 0, UserView(), signals, {}, policy, NO_MODEL, CHAMPION_ARM)
    assert [i.item for i in rec.items[:2]] == ["t0", "t1"]
    assert rec.items[2].item in {f"t{n}" for n in range(2, 8)} and rec.items[2].source == EXPLORE


def test_the_scoring_job_uses_its_own_guarantee_and_checkpoint_interval() -> None:
    from rtrec.config import load_settings
    from rtrec.streaming.scoring import scoring_job_settings

    settings = load_settings(
        "local",
        ["scoring.delivery_guarantee=at-least-once", "scoring.checkpoint_interval_ms=7000"],
    )
    job = scoring_job_settings(settings).flink
    assert (job.delivery_guarantee, job.checkpoint_interval_ms) == ("at-least-once", 7000)
    # Every other job keeps the flink section's, and the rest of it is the scoring job's too.
    assert settings.flink.delivery_guarantee == "exactly-once"
    assert (
        job.model_copy(
            update={
                "delivery_guarantee": settings.flink.delivery_guarantee,
                "checkpoint_interval_ms": settings.flink.checkpoint_interval_ms,
            }
        )
        == settings.flink
    )
