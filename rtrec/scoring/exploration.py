"""The exploration slot: one position of the list given to an item the ranking would not show,
so the system keeps learning about items it is unsure of.

``epsilon``: with probability epsilon, a uniformly drawn pool item. ``thompson``: always the pool
item with the highest draw from Beta(1 + clicks, 1 + impressions - clicks) of its observed CTR,
so items with few impressions are tried and items that earn clicks are tried more. The random
generator is the caller's: seeded from the ``rec_id``, a recomputed list is the same list.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Literal

from rtrec.scoring.candidates import EXPLORE, Reason
from rtrec.scoring.fusion import Scored

Mode = Literal["off", "epsilon", "thompson"]


def explore(
    recommended: Sequence[Scored],
    pool: Sequence[str],
    ctr_counts: Mapping[str, tuple[int, int]],  # item -> (impressions, clicks)
    mode: Mode,
    epsilon: float,
    rng: random.Random,
) -> list[Scored]:
    """``recommended`` with its last position given to an explored pool item (or unchanged)."""
    out = list(recommended)
    shown = {s.item for s in out}
    choices = [item for item in dict.fromkeys(pool) if item not in shown]
    if mode == "off" or not out or not choices:
        return out
    if mode == "epsilon":
        if rng.random() >= epsilon:
            return out
        chosen = rng.choice(choices)
    else:

        def draw(item: str) -> float:
            impressions, clicks = ctr_counts.get(item, (0, 0))
            return rng.betavariate(1 + clicks, 1 + max(0, impressions - clicks))

        chosen = max(choices, key=draw)
    last = out[-1]
    out[-1] = replace(last, item=chosen, reason=Reason(EXPLORE), contributions=())
    return out
