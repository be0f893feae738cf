"""Sequences, the time split, side features and training windows (rtrec.training.data)."""

from __future__ import annotations

from typing import Any

import pytest

from rtrec.models.vocabulary import PAD, UNKNOWN
from rtrec.training.data import (
    Step,
    item_side_features,
    left_pad,
    split_at_share,
    time_split,
    user_steps,
    windows,
)

pytestmark = pytest.mark.unit


def event(user: str, item: str, ts: int, kind: str = "view", **extra: Any) -> dict[str, Any]:
    return {"user_id": user, "item_id": item, "event_ts": ts, "event_type": kind, **extra}


def test_steps_are_interactions_in_time_order_with_repeats_collapsed() -> None:
    events = [
        event("u", "b", 20),
        event("u", "a", 10),
        event("u", "a", 11, "click"),  # the same item again: one step
        event("u", "c", 30, "impression"),  # not an interaction
        event("u", "b", 40, "add_to_cart"),  # right after b (the impression is no step)
        event("u", "a", 50),  # a again, but after b: a new step
    ]
    # The collapsed step keeps the first time and the strongest type.
    steps = [Step(10, "a", "click"), Step(20, "b", "add_to_cart"), Step(50, "a", "view")]
    assert user_steps(events) == {"u": steps}


def test_the_split_never_lets_training_see_the_future() -> None:
    steps = {
        "u1": [Step(1, "a"), Step(2, "b"), Step(5, "c"), Step(6, "z")],
        "u2": [Step(3, "b"), Step(4, "a")],
        "u3": [Step(7, "a")],  # only after the split, no history: not an example
    }
    split = time_split(steps, split_ts=5)
    assert split.vocabulary.items == ("a", "b")  # c and z first appear after the split
    assert split.train == [[2, 3], [3, 2]]
    assert split.train_times == [[1, 2], [3, 4]]
    # u1's c and z are unknown to training: left out as targets, kept in histories.
    assert split.targets == [] and split.unknown_targets == 2
    later = time_split({**steps, "u2": [*steps["u2"], Step(8, "b")]}, split_ts=5)
    assert later.histories == [[3, 2]] and later.targets == [3]
    assert later.examples == [("u2", 2)]  # steps["u2"][:2] is the history
    assert split_at_share(steps, 0.25) == 6


def test_side_features_and_windows() -> None:
    events = [event("u", f"i{n}", n, category_id=f"c{n % 2}", price=float(n)) for n in range(1, 9)]
    split = time_split(user_steps(events), split_ts=100)
    categories, buckets, names = item_side_features(split.vocabulary, events, price_buckets=4)
    assert names == ["c0", "c1"]
    assert categories[:2] == [0, 0] and buckets[:2] == [0, 0]  # PAD and UNKNOWN
    assert categories[2:] == [2, 1, 2, 1, 2, 1, 2, 1]  # i1 (c1) ... i8 (c0)
    assert buckets[2:] == [1, 1, 2, 2, 3, 3, 4, 4]  # price quartiles
    inputs, targets = windows([[2, 3, 4, 5, 6]], max_len=3)
    assert inputs == [[3, 4, 5], [PAD, PAD, 2]]
    assert targets == [[4, 5, 6], [PAD, PAD, 3]]
    assert left_pad([[2, 3, 4, 5], [UNKNOWN]], 3) == [[3, 4, 5], [PAD, PAD, UNKNOWN]]
