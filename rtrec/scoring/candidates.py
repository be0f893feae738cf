"""Candidates: an item one source proposes for a user, its source score, and why.

Every source scores on its own scale (a decayed count, a cosine sum, a logit), so fusion never
adds raw scores: ``rtrec.scoring.fusion`` normalises each source first. The reason travels with
the candidate so the item that wins can say where it came from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Source = Literal["recent", "cf", "model", "trending", "content", "explore"]
RECENT: Source = "recent"  # the user's own recent items: shoppers return to what they viewed
CF: Source = "cf"  # online item-item collaborative filtering
MODEL: Source = "model"  # the deep sequential model (champion or challenger)
TRENDING: Source = "trending"  # popular now in the user's context (device, time of day)
CONTENT: Source = "content"  # items like a recent one (category, price band)
EXPLORE: Source = "explore"  # the exploration slot
SOURCES: tuple[Source, ...] = (RECENT, CF, MODEL, TRENDING, CONTENT)


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an item is recommended: its source and what it is anchored on (an item the user
    interacted with, a context, a model version)."""

    source: Source
    anchor: str = ""

    def text(self) -> str:
        if self.source == RECENT:
            return f"you recently viewed {self.anchor}"
        if self.source == CF:
            return f"because you viewed {self.anchor}" if self.anchor else "shoppers like you"
        if self.source == MODEL:
            return f"picked for you by model {self.anchor}"
        if self.source == TRENDING:
            return f"trending in {self.anchor}" if self.anchor else "trending now"
        if self.source == CONTENT:
            return f"similar to {self.anchor}"
        return "something new for you"


@dataclass(frozen=True, slots=True)
class Candidate:
    item: str
    score: float  # on the source's own scale, higher is better
    reason: Reason


def ranked_candidates(
    source: Source, scored: Iterable[tuple[str, float]], anchor: str = ""
) -> list[Candidate]:
    """Candidates of one source from its ``(item, score)`` list, all with one reason."""
    return [Candidate(item, float(score), Reason(source, anchor)) for item, score in scored]
