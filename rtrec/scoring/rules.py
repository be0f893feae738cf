"""Business rules on a fused ranking: no re-recommending a purchase (unless its category is
re-buyable: groceries, consumables), a cap per category so one category cannot fill the list,
and an optional price band."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from rtrec.scoring.fusion import Scored


@dataclass(frozen=True, slots=True)
class ItemInfo:
    category: str | None = None
    price: float | None = None


@dataclass(frozen=True)
class Rules:
    rebuyable_categories: frozenset[str] = field(default_factory=frozenset)
    max_per_category: int = 3  # items of one category in a list
    min_price: float | None = None
    max_price: float | None = None

    def allows(self, item: str, info: ItemInfo, purchased: Collection[str]) -> bool:
        """Whether ``item`` may be shown at all (the category cap depends on the list)."""
        if item in purchased and info.category not in self.rebuyable_categories:
            return False
        # An item of unknown price is kept: the band filters what it can judge.
        if info.price is not None:
            if self.min_price is not None and info.price < self.min_price:
                return False
            if self.max_price is not None and info.price > self.max_price:
                return False
        return True


def apply_rules(
    ranked: Sequence[Scored],
    items: Mapping[str, ItemInfo],
    purchased: Collection[str],
    rules: Rules,
    k: int,
) -> list[Scored]:
    """The best ``k`` of ``ranked`` that the rules allow, in order; an item of unknown
    category is not capped (there is nothing to diversify it against)."""
    kept: list[Scored] = []
    per_category: dict[str, int] = {}
    for scored in ranked:
        if len(kept) == k:
            break
        info = items.get(scored.item, ItemInfo())
        if not rules.allows(scored.item, info, purchased):
            continue
        if info.category is not None:
            if per_category.get(info.category, 0) >= rules.max_per_category:
                continue
            per_category[info.category] = per_category.get(info.category, 0) + 1
        kept.append(scored)
    return kept
