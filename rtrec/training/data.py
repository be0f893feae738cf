"""Training and evaluation data from events: per-user item sequences, a time-based split, item
side features, and the padded windows the model trains on (torch-free; ``to_batch`` imports it).

A user's sequence holds their interactions (views, clicks, carts, purchases) in time order with
consecutive repeats of one item collapsed (a view, click and cart of one item is one step, of
its strongest type: the online-CF baseline weighs steps by type). The
split is by time: the vocabulary and every training sequence come from events before
``split_ts``; each interaction at or after it is an evaluation example whose history is
everything the user did before it, so the model never sees the future.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rtrec.models.vocabulary import PAD, UNKNOWN, ItemVocabulary
from rtrec.schema.events import (
    ADD_TO_CART,
    CATEGORY_ID,
    CLICK,
    EVENT_TS,
    EVENT_TYPE,
    ITEM_ID,
    PRICE,
    PURCHASE,
    USER_ID,
    VIEW,
)

INTERACTIONS = (VIEW, CLICK, ADD_TO_CART, PURCHASE)  # weakest first
_STRENGTH = {event_type: n for n, event_type in enumerate(INTERACTIONS)}


@dataclass(frozen=True)
class Step:
    ts: int
    item: str
    event_type: str = VIEW  # the strongest interaction among the collapsed events


@dataclass(frozen=True)
class Split:
    vocabulary: ItemVocabulary
    split_ts: int
    train: list[list[int]]  # per user with training steps: item indices in time order
    train_times: list[list[int]]
    histories: list[list[int]]  # per evaluation example: the user's items before the target
    targets: list[int]
    # Per evaluation example: the user and the target's position in the user's steps (the
    # history is steps[user][:position]), for baselines that need more than item indices.
    examples: list[tuple[str, int]]
    unknown_targets: int  # evaluation steps on items the vocabulary lacks (left out)


def user_steps(events: Iterable[Mapping[str, Any]]) -> dict[str, list[Step]]:
    """Each user's interactions in time order (ties in arrival order), consecutive repeats of
    one item collapsed into the first one's time and the strongest type."""
    steps: dict[str, list[Step]] = defaultdict(list)
    for event in events:
        if event[EVENT_TYPE] in _STRENGTH:
            steps[str(event[USER_ID])].append(
                Step(int(event[EVENT_TS]), str(event[ITEM_ID]), str(event[EVENT_TYPE]))
            )
    collapsed = {}
    for user, user_list in steps.items():
        kept: list[Step] = []
        for step in sorted(user_list, key=lambda s: s.ts):  # stable: arrival order within a ms
            if kept and kept[-1].item == step.item:
                if _STRENGTH[step.event_type] > _STRENGTH[kept[-1].event_type]:
                    kept[-1] = Step(kept[-1].ts, step.item, step.event_type)
            else:
                kept.append(step)
        collapsed[user] = kept
    return collapsed


def time_split(steps: Mapping[str, Sequence[Step]], split_ts: int) -> Split:
    """Train on what happened before ``split_ts``, evaluate on every step from it on."""
    vocabulary = ItemVocabulary.of(s.item for seq in steps.values() for s in seq if s.ts < split_ts)
    train: list[list[int]] = []
    train_times: list[list[int]] = []
    histories: list[list[int]] = []
    targets: list[int] = []
    examples: list[tuple[str, int]] = []
    unknown = 0
    for user in sorted(steps):
        sequence = steps[user]
        before = [s for s in sequence if s.ts < split_ts]
        if before:
            train.append(vocabulary.indices([s.item for s in before]))
            train_times.append([s.ts for s in before])
        items = vocabulary.indices([s.item for s in sequence])
        for n, step in enumerate(sequence):
            if step.ts < split_ts or n == 0:
                continue
            if items[n] == UNKNOWN:
                unknown += 1
                continue
            histories.append(items[:n])
            targets.append(items[n])
            examples.append((user, n))
    return Split(vocabulary, split_ts, train, train_times, histories, targets, examples, unknown)


def split_at_share(steps: Mapping[str, Sequence[Step]], test_share: float) -> int:
    """The time that leaves the last ``test_share`` of all steps for evaluation."""
    times = sorted(s.ts for seq in steps.values() for s in seq)
    return times[min(len(times) - 1, int(len(times) * (1.0 - test_share)))]


def item_side_features(
    vocabulary: ItemVocabulary, events: Iterable[Mapping[str, Any]], price_buckets: int = 8
) -> tuple[list[int], list[int], list[str]]:
    """Per vocabulary index: a category index (0: none) and a price bucket (0: none; 1..n by
    price quantile), and the category names (index - 1). PAD and UNKNOWN get 0 and 0."""
    category: dict[str, str] = {}
    price: dict[str, float] = {}
    for event in events:
        item = str(event[ITEM_ID])
        if event.get(CATEGORY_ID):
            category[item] = str(event[CATEGORY_ID])
        if event.get(PRICE) is not None:
            price[item] = float(event[PRICE])
    names = sorted(set(category.values()))
    category_index = {name: n + 1 for n, name in enumerate(names)}
    known = sorted(price.values())
    quantiles = range(1, price_buckets) if known else range(0)
    edges = [known[len(known) * q // price_buckets] for q in quantiles]

    def bucket(item: str) -> int:
        if item not in price:
            return 0
        return 1 + sum(price[item] >= edge for edge in edges)

    categories = [0, 0] + [category_index.get(category.get(i, ""), 0) for i in vocabulary.items]
    buckets = [0, 0] + [bucket(i) for i in vocabulary.items]
    return categories, buckets, names


def windows(
    sequences: Sequence[Sequence[int]], max_len: int
) -> tuple[list[list[int]], list[list[int]]]:
    """Training windows: for each sequence, inputs ``s[:-1]`` and next-item targets ``s[1:]``,
    cut into pieces of ``max_len`` from the end and left-padded with PAD."""
    inputs: list[list[int]] = []
    targets: list[list[int]] = []
    for sequence in sequences:
        for end in range(len(sequence) - 1, 0, -max_len):
            start = max(0, end - max_len)
            x, y = list(sequence[start:end]), list(sequence[start + 1 : end + 1])
            pad = [PAD] * (max_len - len(x))
            inputs.append(pad + x)
            targets.append(pad + y)
    return inputs, targets


def left_pad(histories: Sequence[Sequence[int]], max_len: int) -> list[list[int]]:
    """The last ``max_len`` items of each history, left-padded with PAD."""
    return [[PAD] * (max_len - len(h[-max_len:])) + list(h[-max_len:]) for h in histories]
