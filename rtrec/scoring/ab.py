"""A/B assignment and recommendation ids.

A user's arm is a pure function of the user id and the experiment's salt: stable across events,
restarts and processes (no state to checkpoint), independent between experiments with different
salts, and uniform enough that ``challenger_share`` of users land in the challenger arm.
"""

from __future__ import annotations

import hashlib
import math
from typing import Literal

Arm = Literal["champion", "challenger"]
# Columns of the online A/B metrics (rtrec.ab_metrics), beside features' purchases/conversion.
ARM, IMPRESSIONS, CLICKS, CTR = "arm", "impressions", "clicks", "ctr"
CHAMPION_ARM: Arm = "champion"
CHALLENGER_ARM: Arm = "challenger"


def _threshold(challenger_share: float) -> int:
    # share x 2^64 is exact in floating point (a power-of-two scaling); below its ceiling is
    # below it.
    return math.ceil(challenger_share * 2**64)


def assign_arm(user: str, challenger_share: float, salt: str) -> Arm:
    """Challenger when the first 8 bytes of SHA-256("<salt>:<user>"), as a number, fall below
    ``challenger_share`` x 2^64 (the same on every machine and in SQL: ``arm_sql``)."""
    digest = hashlib.sha256(f"{salt}:{user}".encode()).digest()
    below = int.from_bytes(digest[:8], "big") < _threshold(challenger_share)
    return CHALLENGER_ARM if below else CHAMPION_ARM


def arm_sql(user_column: str, challenger_share: float, salt: str) -> str:
    """``assign_arm`` as a Flink SQL expression, so it runs in the JVM: 16 lowercase hex digits
    compare as strings exactly as their numbers do."""
    if challenger_share <= 0.0:
        return f"'{CHAMPION_ARM}'"
    if challenger_share >= 1.0:
        return f"'{CHALLENGER_ARM}'"
    prefix = f"{salt}:".replace("'", "''")
    threshold = format(_threshold(challenger_share), "016x")
    return (
        f"CASE WHEN SUBSTRING(SHA256(CONCAT('{prefix}', {user_column})), 1, 16) < '{threshold}' "
        f"THEN '{CHALLENGER_ARM}' ELSE '{CHAMPION_ARM}' END"
    )


def rec_id(user: str, event_id: str) -> str:
    """The id of the list computed for ``user`` on event ``event_id``: deterministic, so a list
    recomputed after a restore from a checkpoint has the same id and the upsert replaces it."""
    return hashlib.sha256(f"{user}\x00{event_id}".encode()).hexdigest()[:24]
