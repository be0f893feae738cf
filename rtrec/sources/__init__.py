"""Event sources: the seeded shop simulator and replay of public datasets (docs/sources.md).

A source is an iterator of ``Record``: a plain event dict (valid per ``rtrec.schema``) or one of
the wrappers below, which tell the producer how to route what is not a fresh valid event.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

from rtrec.schema.events import EVENT_TS

Event: TypeAlias = dict[str, Any]


@dataclass(frozen=True)
class Duplicate:
    """An exact re-send of an event already emitted: same event_id, same content."""

    event: Event


@dataclass(frozen=True)
class Malformed:
    """A raw payload built to fail validation; ``defect`` names how it was broken and ``ts``
    is the Kafka timestamp to send it with (the event time of the event it was made from)."""

    payload: bytes
    defect: str
    ts: int


@dataclass(frozen=True)
class BadRow:
    """A dataset line that could not be mapped to a valid event (1-based ``line_number``)."""

    line_number: int
    raw: str
    reason: str

    def dead_letter(self, source: str) -> bytes:
        """The dead-letter record: the raw line, why it was rejected, and ``<source>:<line>``."""
        record = {"raw": self.raw, "reason": self.reason, "source": f"{source}:{self.line_number}"}
        return json.dumps(record, ensure_ascii=False).encode()


Record: TypeAlias = Event | Duplicate | Malformed | BadRow


def paced(
    records: Iterable[Record],
    speed: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Record]:
    """Yield ``records`` at ``speed`` x real time between their event timestamps.

    ``speed`` 0 (or infinity) means as fast as possible. Each event is due at
    ``start + (event_ts - first_event_ts) / speed``, measured from the first event rather than
    from the previous one, so time spent producing never accumulates into drift. Records other
    than events (duplicates, malformed payloads, bad rows) pass through without waiting.
    """
    if speed <= 0 or math.isinf(speed):
        yield from records
        return
    origin: tuple[int, float] | None = None
    for record in records:
        if isinstance(record, dict):
            if origin is None:
                origin = (record[EVENT_TS], clock())
            else:
                delay = origin[1] + (record[EVENT_TS] - origin[0]) / 1000 / speed - clock()
                if delay > 0:
                    sleep(delay)
        yield record
