"""Scoring's pure core: fusion, rules, the exploration slot, A/B assignment and reasons."""

from __future__ import annotations

import random

import pytest

from rtrec.scoring.ab import CHALLENGER_ARM, CHAMPION_ARM, assign_arm, rec_id
from rtrec.scoring.candidates import (
    CF,
    CONTENT,
    EXPLORE,
    MODEL,
    RECENT,
    TRENDING,
    Reason,
    ranked_candidates,
)
from rtrec.scoring.exploration import explore
from rtrec.scoring.fusion import Scored, fuse, normalised
from rtrec.scoring.rules import ItemInfo, Rules, apply_rules

pytestmark = pytest.mark.unit


def scored(*items: str) -> list[Scored]:
    return [Scored(item, 1.0 / (n + 1), Reason(CF), ()) for n, item in enumerate(items)]


def test_normalisation_maps_each_source_onto_zero_to_one() -> None:
    logits = ranked_candidates(MODEL, [("a", -2.0), ("b", 6.0), ("c", 2.0)], "v3")
    assert {i: v for i, (v, _) in normalised(logits).items()} == {"a": 0.0, "b": 1.0, "c": 0.5}
    assert normalised(ranked_candidates(CF, [("x", 0.3)]))["x"][0] == 1.0  # one item: its best
    assert normalised([]) == {}


def test_fusion_weights_sources_and_explains_by_the_strongest_contribution() -> None:
    by_source = {
        RECENT: ranked_candidates(RECENT, [("shoe", 3.0), ("sock", 1.0)], "shoe"),
        CF: ranked_candidates(CF, [("sock", 0.9), ("lace", 0.5), ("hat", 0.1)], "shoe"),
        TRENDING: ranked_candidates(TRENDING, [("hat", 10.0)], "mobile"),
    }
    fused = fuse(by_source, {RECENT: 0.5, CF: 1.0, TRENDING: 0.2, MODEL: 1.0})
    scores = {s.item: s.score for s in fused}
    # recent: shoe 1, sock 0; cf: sock 1, lace 0.5, hat 0; trending: hat 1.
    assert scores == pytest.approx({"shoe": 0.5, "sock": 1.0, "lace": 0.5, "hat": 0.2})
    assert [s.item for s in fused] == ["sock", "lace", "shoe", "hat"]  # ties by item id
    reasons = {s.item: s.reason for s in fused}
    assert reasons["sock"] == Reason(CF, "shoe") and reasons["hat"] == Reason(TRENDING, "mobile")
    assert dict(next(s for s in fused if s.item == "sock").contributions) == {RECENT: 0, CF: 1}
    # A source with weight 0 (or none) contributes nothing and proposes nothing.
    assert {s.item for s in fuse(by_source, {CF: 1.0})} == {"sock", "lace", "hat"}


def test_rules_exclude_purchases_cap_categories_and_keep_the_price_band() -> None:
    items = {
        "milk": ItemInfo("grocery", 1.0),
        "tv": ItemInfo("tech", 500.0),
        "phone": ItemInfo("tech", 300.0),
        "cable": ItemInfo("tech", 5.0),
        "mouse": ItemInfo("tech", 20.0),
        "yacht": ItemInfo("boats", 90_000.0),
    }
    ranked = scored("milk", "tv", "phone", "cable", "yacht", "mouse", "mystery")
    rules = Rules(frozenset({"grocery"}), max_per_category=2, max_price=1_000.0)
    kept = apply_rules(ranked, items, purchased={"milk", "tv"}, rules=rules, k=4)
    # milk is re-buyable; tv was bought; tech is capped at two; the yacht is out of the band;
    # an item the catalogue does not know is neither capped nor priced out.
    assert [s.item for s in kept] == ["milk", "phone", "cable", "mystery"]
    assert len(apply_rules(ranked, items, set(), Rules(max_per_category=9), k=3)) == 3
    assert not Rules(min_price=10.0).allows("cable", items["cable"], ())


def test_exploration_slot() -> None:
    listed = scored("a", "b", "c")
    pool = ["b", "x", "y"]
    assert explore(listed, pool, {}, "off", 1.0, random.Random(0)) == listed
    assert explore(listed, pool, {}, "epsilon", 0.0, random.Random(0)) == listed
    explored = explore(listed, pool, {}, "epsilon", 1.0, random.Random(0))
    assert explored[:2] == listed[:2] and explored[2].item in {"x", "y"}
    assert explored[2].reason == Reason(EXPLORE) and explored[2].score == listed[2].score
    assert explore(listed, ["a", "b"], {}, "epsilon", 1.0, random.Random(0)) == listed  # no pool
    # Thompson: a proven item wins the slot far more often than one that never earns a click;
    # the same seed gives the same list.
    counts = {"x": (1_000, 100), "y": (1_000, 0)}
    wins = sum(
        explore(listed, pool, counts, "thompson", 0.0, random.Random(seed))[2].item == "x"
        for seed in range(200)
    )
    assert wins == 200
    # An untried item (Beta(1, 1)) still gets tried against a poor one.
    untried = [
        explore(listed, pool, {"y": (1_000, 10)}, "thompson", 0.0, random.Random(s))[2].item
        for s in range(200)
    ]
    assert 150 < untried.count("x") < 200
    again = [explore(listed, pool, counts, "thompson", 0.0, random.Random(7)) for _ in range(2)]
    assert again[0] == again[1]


def test_ab_assignment_is_stable_proportional_and_salted() -> None:
    users = [f"u{n}" for n in range(20_000)]
    arms = [assign_arm(u, 0.2, "exp-1") for u in users]
    assert arms == [assign_arm(u, 0.2, "exp-1") for u in users]  # stable
    assert arms.count(CHALLENGER_ARM) / len(users) == pytest.approx(0.2, abs=0.01)
    assert set(arms) == {CHAMPION_ARM, CHALLENGER_ARM}
    assert all(assign_arm(u, 0.0, "exp-1") == CHAMPION_ARM for u in users[:100])
    assert all(assign_arm(u, 1.0, "exp-1") == CHALLENGER_ARM for u in users[:100])
    # Another experiment's challengers are not this one's: about 20 % of them overlap.
    other = [assign_arm(u, 0.2, "exp-2") for u in users]
    both = sum(a == b == CHALLENGER_ARM for a, b in zip(arms, other, strict=True))
    assert both / arms.count(CHALLENGER_ARM) == pytest.approx(0.2, abs=0.03)


def test_the_sql_arm_is_the_python_arm() -> None:
    """The Flink SQL form (run in the JVM) must split users exactly as the scoring job does:
    its comparison of hex prefixes equals the numeric one, at the threshold too."""
    import hashlib

    from rtrec.scoring.ab import arm_sql

    sql = arm_sql("`user_id`", 0.3, "it's")
    assert "'it''s:'" in sql and "SHA256" in sql  # the salt's quote is escaped
    threshold = sql.split("< '")[1][:16]
    for n in range(5_000):
        user = f"u{n}"
        prefix = hashlib.sha256(f"it's:{user}".encode()).hexdigest()[:16]
        sql_arm = CHALLENGER_ARM if prefix < threshold else CHAMPION_ARM
        assert sql_arm == assign_arm(user, 0.3, "it's"), user
    assert arm_sql("u", 0.0, "s") == "'champion'" and arm_sql("u", 1.0, "s") == "'challenger'"


def test_rec_ids_and_reasons() -> None:
    assert rec_id("u1", "e1") == rec_id("u1", "e1") != rec_id("u1", "e2") != rec_id("u2", "e1")
    assert Reason(CF, "i7").text() == "because you viewed i7"
    assert Reason(TRENDING, "mobile, evening").text() == "trending in mobile, evening"
    assert Reason(CONTENT, "i7").text() == "similar to i7"
    assert Reason(RECENT, "i7").text() == "you recently viewed i7"
    assert Reason(MODEL, "v3").text() == "picked for you by model v3"
    assert Reason(EXPLORE).text() == "something new for you"
