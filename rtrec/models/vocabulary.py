"""The item vocabulary shared by the model, the baselines and serving (no torch needed).

Index 0 pads sequences, 1 is the unknown item (an id the vocabulary does not hold), known items
start at 2. The vocabulary is saved with every registered model version, so serving maps ids
to the same indices the model was trained with.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

PAD = 0
UNKNOWN = 1
FIRST_ITEM = 2


@dataclass(frozen=True)
class ItemVocabulary:
    items: tuple[str, ...]  # the known item ids; items[i] has index FIRST_ITEM + i
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {item: FIRST_ITEM + n for n, item in enumerate(self.items)}
        if len(index) != len(self.items):
            raise ValueError("item ids in a vocabulary must be distinct")
        object.__setattr__(self, "_index", index)

    @classmethod
    def of(cls, items: Iterable[str]) -> ItemVocabulary:
        """Every distinct id, in sorted order (so the same items always get the same indices)."""
        return cls(tuple(sorted(set(items))))

    def __len__(self) -> int:
        """The number of indices, PAD and UNKNOWN included."""
        return FIRST_ITEM + len(self.items)

    def index(self, item: str) -> int:
        return self._index.get(item, UNKNOWN)

    def indices(self, items: Sequence[str]) -> list[int]:
        return [self._index.get(item, UNKNOWN) for item in items]

    def item(self, index: int) -> str | None:
        """The id at ``index``; None for PAD and UNKNOWN."""
        return self.items[index - FIRST_ITEM] if index >= FIRST_ITEM else None
