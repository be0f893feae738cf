"""A/B assignment and recommendation ids.

A user's arm is a pure function of the user id and the experiment's salt: stable across events,
restarts and processes (no state to checkpoint), independent between experiments with different
salts, and uniform enough that ``challenger_share`` of users land in the challenger arm.
"""

from __future__ import annotations

import hashlib
from typing import Literal

Arm = Literal["champion", "challenger"]
CHAMPION_ARM: Arm = "champion"
CHALLENGER_ARM: Arm = "challenger"


def unit_hash(text: str) -> float:
    """A uniform number in [0, 1) from ``text`` (SHA-256: the same on every machine)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2.0**64


def assign_arm(user: str, challenger_share: float, salt: str) -> Arm:
    return CHALLENGER_ARM if unit_hash(f"{salt}:{user}") < challenger_share else CHAMPION_ARM


def rec_id(user: str, event_id: str) -> str:
    """The id of the list computed for ``user`` on event ``event_id``: deterministic, so a list
    recomputed after a restore from a checkpoint has the same id and the upsert replaces it."""
    return hashlib.sha256(f"{user}\x00{event_id}".encode()).hexdigest()[:24]
