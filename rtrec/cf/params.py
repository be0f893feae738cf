"""The parameters of online item-item collaborative filtering (docs/online_cf.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING

from rtrec.schema.events import (
    ADD_TO_CART,
    CLICK,
    EVENT_TYPES,
    IMPRESSION,
    PURCHASE,
    REMOVE_FROM_CART,
    VIEW,
)

if TYPE_CHECKING:
    from rtrec.config.settings import CfSettings

DAY_MS = 86_400_000

DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        VIEW: 1.0,
        CLICK: 2.0,
        ADD_TO_CART: 4.0,
        PURCHASE: 6.0,
        # Zero weight: the event neither enters a history nor co-occurs with anything.
        REMOVE_FROM_CART: 0.0,
        IMPRESSION: 0.0,
    }
)


@dataclass(frozen=True)
class CfParams:
    """Online CF parameters; every bound on state is one of these numbers."""

    weights: Mapping[str, float] = field(default_factory=lambda: DEFAULT_WEIGHTS)
    history_size: int = 50  # weighted interactions kept per user
    history_ttl_ms: int = 7 * DAY_MS  # event time
    decay_ms: int = DAY_MS  # time constant of the exponential time decay
    dedup_size: int = 500  # event ids remembered per user (within the history TTL)
    max_partners: int = 200  # co-occurrence partners kept per item
    neighbours: int = 20  # top-N neighbours emitted per item
    candidates: int = 50  # top CF candidates emitted per user

    def __post_init__(self) -> None:
        unknown = sorted(set(self.weights) - set(EVENT_TYPES))
        if unknown:
            raise ValueError(f"weights name unknown event types: {', '.join(unknown)}")
        if any(w < 0 for w in self.weights.values()):
            # Negative weights would break the cosine bound (docs/online_cf.md §3).
            raise ValueError("event weights must be >= 0")
        for name in (
            "history_size",
            "history_ttl_ms",
            "decay_ms",
            "dedup_size",
            "max_partners",
            "neighbours",
            "candidates",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.max_partners < self.neighbours:
            raise ValueError("max_partners must be >= neighbours")
        # A private copy: a caller's dict changing later must not change a running job.
        object.__setattr__(self, "weights", dict(self.weights))

    def weight(self, event_type: str) -> float:
        """The weight of an event type (0 for types the mapping leaves out)."""
        return self.weights.get(event_type, 0.0)


def cf_params(settings: CfSettings) -> CfParams:
    """The parameters in the ``cf`` settings section (its other keys configure the Flink job
    only); the Flink job and the Spark twin both take theirs from here."""
    names = {f.name for f in fields(CfParams)}
    return CfParams(**settings.model_dump(include=names))
