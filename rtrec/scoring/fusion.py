"""Weighted fusion of the candidate sources into one ranking.

Each source's scores are min-max normalised over its own list (its best becomes 1, its worst
0; a list of one scores 1), so a weight says how much a source's favourite is worth against
another's, whatever their native scales. An item's fused score is the weighted sum of its
normalised scores; its reason is that of the source contributing most to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rtrec.scoring.candidates import SOURCES, Candidate, Reason, Source


@dataclass(frozen=True, slots=True)
class Scored:
    item: str
    score: float
    reason: Reason
    contributions: tuple[tuple[Source, float], ...]  # weighted, in SOURCES order


def normalised(candidates: Sequence[Candidate]) -> dict[str, tuple[float, Reason]]:
    """Min-max normalised score and reason per item (an item listed twice keeps its best)."""
    if not candidates:
        return {}
    scores = [c.score for c in candidates]
    low, high = min(scores), max(scores)
    span = high - low
    out: dict[str, tuple[float, Reason]] = {}
    for candidate in candidates:
        value = 1.0 if span == 0.0 else (candidate.score - low) / span
        if candidate.item not in out or value > out[candidate.item][0]:
            out[candidate.item] = (value, candidate.reason)
    return out


def fuse(
    by_source: Mapping[Source, Sequence[Candidate]], weights: Mapping[Source, float]
) -> list[Scored]:
    """Every candidate item, best first (ties by item id). Sources without a weight count 0."""
    sources = [s for s in SOURCES if s in by_source and weights.get(s, 0.0) > 0.0]
    normal = {s: normalised(by_source[s]) for s in sources}
    items = sorted({item for s in sources for item in normal[s]})
    fused: list[Scored] = []
    for item in items:
        parts = [(s, weights[s] * normal[s][item][0]) for s in sources if item in normal[s]]
        # The strongest contribution explains the item; SOURCES order breaks ties.
        top_source = max(parts, key=lambda p: p[1])[0]
        reason = normal[top_source][item][1]
        fused.append(Scored(item, sum(v for _, v in parts), reason, tuple(parts)))
    fused.sort(key=lambda s: (-s.score, s.item))
    return fused
