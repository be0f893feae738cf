"""The event stream as the explore notebook sees it: what is on the events topic and its dead
letters, and the summaries it plots."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtrec.analysis.topics import read_topic
from rtrec.config import Settings
from rtrec.errors import RtrecError
from rtrec.producer import ProduceSummary
from rtrec.schema import validate
from rtrec.schema.events import (
    ADD_TO_CART,
    CLICK,
    EVENT_ID,
    EVENT_TS,
    EVENT_TYPE,
    EVENT_TYPES,
    PURCHASE,
    SESSION_ID,
    VIEW,
)
from rtrec.sources import Event

SOURCES = ("kafka", "simulate", "replay")
FUNNEL: tuple[str, ...] = (VIEW, CLICK, ADD_TO_CART, PURCHASE)
EVENTS, SHARE, SESSIONS, ITEMS, DURATION_S = "events", "share", "sessions", "items", "duration_s"
OF_FIRST, OF_PREVIOUS = "of_first_stage", "of_previous_stage"


@dataclass(frozen=True)
class StreamSample:
    """What was read from the events topic (and the dead-letter topic)."""

    messages: int  # read from the events topic
    events: list[Event]  # valid, the first message of each event_id
    duplicates: int  # valid messages repeating an event_id already read
    malformed: list[str]  # why each invalid message failed the schema
    dead_letters: list[str]  # the reason of each record on the dead-letter topic

    @property
    def malformed_share(self) -> float:
        return len(self.malformed) / self.messages if self.messages else 0.0


def produce_source(
    settings: Settings,
    source: str,
    *,
    events: int = 5_000,
    malformed: int = 0,
    duplicates: int = 0,
    replay_format: str = "otto",
    replay_path: str | Path = "",
    limit: int | None = None,
) -> ProduceSummary | None:
    """Fill the events topic first: ``simulate`` sends the seeded simulator's stream,
    ``replay`` a dataset file; ``kafka`` sends nothing (the topic is read as it is)."""
    from rtrec.producer import produce

    if source == "kafka":
        return None
    if source == "simulate":
        from rtrec.sources.simulator import Simulator

        simulator = Simulator(
            settings.simulator, events=events, malformed=malformed, duplicates=duplicates
        )
        return produce(settings, simulator.stream(), source="simulator")
    if source == "replay":
        from rtrec.sources.replay import replay

        # A relative path is the project root's, wherever the notebook runs from.
        path = Path(replay_path)
        path = path if path.is_absolute() else settings.root / path
        if not path.is_file():
            raise RtrecError(f"replay_path: no such file {path}")
        return produce(settings, replay(replay_format, path, limit=limit), source="replay")
    raise RtrecError(f"source: {source!r} is not one of {', '.join(SOURCES)}")


def read_stream(settings: Settings, max_messages: int, timeout_s: float = 60.0) -> StreamSample:
    """The first ``max_messages`` of the events topic, validated against the schema as the
    streaming jobs validate them, and every reason on the dead-letter topic."""
    topics = settings.kafka.topics
    bootstrap = settings.kafka.bootstrap_servers
    messages = read_topic(bootstrap, topics.events, max_messages, timeout_s)
    events: list[Event] = []
    seen: set[str] = set()
    duplicates = 0
    malformed: list[str] = []
    for message in messages:
        checked = validate(message.value)
        if checked.record is None:
            malformed.append(checked.error or "invalid")
        elif checked.record[EVENT_ID] in seen:
            duplicates += 1
        else:
            seen.add(checked.record[EVENT_ID])
            events.append(checked.record)
    dead_letters = [
        str(json.loads(m.value).get("reason", "?"))
        for m in read_topic(bootstrap, topics.dlq, None, timeout_s)
        if m.value is not None
    ]
    return StreamSample(len(messages), events, duplicates, malformed, dead_letters)


def events_frame(events: Sequence[Event]) -> Any:
    """One row per event, with ``time`` (event time as a UTC timestamp) beside the fields."""
    import pandas as pd

    frame = pd.DataFrame(list(events))
    if frame.empty:
        return pd.DataFrame(columns=[EVENT_ID, SESSION_ID, EVENT_TYPE, EVENT_TS, "time"])
    frame["time"] = pd.to_datetime(frame[EVENT_TS], unit="ms", utc=True)
    return frame.sort_values(EVENT_TS, kind="stable").reset_index(drop=True)


def event_type_mix(frame: Any) -> Any:
    """Events and share per event type, in the schema's order (types never seen included)."""
    counts = frame[EVENT_TYPE].value_counts().reindex(list(EVENT_TYPES), fill_value=0)
    total = int(counts.sum())
    mix = counts.rename(EVENTS).to_frame()
    mix[SHARE] = mix[EVENTS] / total if total else 0.0
    return mix


def activity(frame: Any, column: str) -> Any:
    """Events per value of ``column`` (a user or item id), most active first."""
    return frame[column].value_counts().rename(EVENTS)


def long_tail(counts: Any) -> dict[str, float]:
    """How concentrated activity is: entities, mean and median events, and the share of all
    events that the most active 10% (at least one) account for."""
    if counts.empty:
        return {"entities": 0, "mean": 0.0, "median": 0.0, "max": 0, "top_10pct_share": 0.0}
    top = max(1, round(len(counts) * 0.1))
    ordered = counts.sort_values(ascending=False)
    return {
        "entities": len(counts),
        "mean": float(counts.mean()),
        "median": float(counts.median()),
        "max": int(counts.max()),
        "top_10pct_share": float(ordered.iloc[:top].sum() / counts.sum()),
    }


def sessions(frame: Any) -> Any:
    """Per session: events, distinct items and duration (first to last event) in seconds."""
    import pandas as pd

    if frame.empty:
        return pd.DataFrame(columns=[EVENTS, ITEMS, DURATION_S])
    grouped = frame.groupby(SESSION_ID)
    return pd.DataFrame(
        {
            EVENTS: grouped.size(),
            ITEMS: grouped["item_id"].nunique(),
            DURATION_S: (grouped[EVENT_TS].max() - grouped[EVENT_TS].min()) / 1000.0,
        }
    )


def hour_of_day(frame: Any) -> Any:
    """Events per UTC hour of event time, 0-23 (hours without events as 0)."""
    if frame.empty:
        import pandas as pd

        return pd.Series(0, index=range(24), name=EVENTS)
    return frame["time"].dt.hour.value_counts().reindex(range(24), fill_value=0).rename(EVENTS)


def funnel(frame: Any, stages: Sequence[str] = FUNNEL) -> Any:
    """Sessions with at least one event of each stage, and each stage as a share of the first
    and of the previous stage. Sessions, not events: a shopper who views five items and buys
    one converted once. Leading stages no session reached are left out: a source that logs no
    views (OTTO logs clicks, carts and orders) starts at clicks."""
    import pandas as pd

    reached = [
        int(frame.loc[frame[EVENT_TYPE] == stage, SESSION_ID].nunique()) if len(frame) else 0
        for stage in stages
    ]
    while len(reached) > 1 and reached[0] == 0:
        reached, stages = reached[1:], stages[1:]
    table = pd.DataFrame({SESSIONS: reached}, index=pd.Index(list(stages), name=EVENT_TYPE))
    first = reached[0] if reached else 0
    table[OF_FIRST] = [n / first if first else 0.0 for n in reached]
    table[OF_PREVIOUS] = [
        1.0 if i == 0 else (n / reached[i - 1] if reached[i - 1] else 0.0)
        for i, n in enumerate(reached)
    ]
    return table


def reason_kinds(reasons: Iterable[str]) -> Any:
    """Rejections grouped by kind: the reason without the offending value (numbers and the
    detail after a colon differ per message, the kind does not)."""
    import pandas as pd

    kinds = [_kind(reason) for reason in reasons]
    return pd.Series(kinds, dtype=object).value_counts().rename(EVENTS)


def _kind(reason: str) -> str:
    kind = reason.split(":", 1)[0]
    kind = re.sub(r" is [^,]*,", " is …,", kind)
    return re.sub(r"'[^']*'(?= is not supported)|-?\d+(\.\d+)?", "…", kind)
