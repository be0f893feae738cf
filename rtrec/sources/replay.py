"""Replay of public dataset formats as events, in event-time order (docs/sources.md).

``read(format, path)`` streams one file (``.gz`` too) in file order and yields a valid event
dict or a ``BadRow`` per problem, never raising on bad data. ``replay(format, path)`` yields the
bad rows as the file is read, then every event in event-time order: most datasets are not sorted
by time (OTTO is per session, Taobao and MovieLens per user), so a global sort is needed. It
sorts in memory up to ``buffer_events`` events and beyond that does an external merge sort
through sorted runs in a temporary directory.
"""

from __future__ import annotations

import gzip
import heapq
import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rtrec.errors import RtrecError
from rtrec.schema import EVENT_SCHEMA
from rtrec.schema.events import (
    ADD_TO_CART,
    CATEGORY_ID,
    CLICK,
    EVENT_ID,
    EVENT_TS,
    EVENT_TYPE,
    ITEM_ID,
    PRICE,
    PURCHASE,
    QUANTITY,
    REMOVE_FROM_CART,
    SESSION_ID,
    USER_ID,
    VIEW,
)
from rtrec.schema.wire import check_value
from rtrec.sources import BadRow, Event

# Stop instead of flooding the dead-letter topic when a file is clearly not in the format.
GIVE_UP_AFTER_BAD_ROWS = 20
DEFAULT_BUFFER_EVENTS = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

OTTO_TYPES = {"clicks": CLICK, "carts": ADD_TO_CART, "orders": PURCHASE}
TAOBAO_TYPES = {"pv": VIEW, "fav": CLICK, "cart": ADD_TO_CART, "buy": PURCHASE}
RETAILROCKET_TYPES = {"view": VIEW, "addtocart": ADD_TO_CART, "transaction": PURCHASE}
REES46_TYPES = {
    "view": VIEW,
    "cart": ADD_TO_CART,
    "remove_from_cart": REMOVE_FROM_CART,
    "purchase": PURCHASE,
}
MOVIELENS_LIKED = 4.0  # a rating at or above this is a purchase, below it a view


@dataclass(frozen=True)
class _Line:
    """One data line of a file, with what the parsers need to build ids."""

    number: int
    text: str
    source: str  # "<format>:<file name without .gz>", the prefix of line-based event ids

    def fields(self, count: int, separator: str = ",") -> list[str]:
        # None of these datasets quote fields, so a plain split is exact (and fast).
        parts = self.text.split(separator)
        if len(parts) != count:
            raise ValueError(f"expected {count} columns, got {len(parts)}")
        return parts

    @property
    def event_id(self) -> str:
        return f"{self.source}:{self.number}"


Parser = Callable[[_Line], list[Event]]


@dataclass(frozen=True)
class _Format:
    parse: Parser
    header: str | None = None  # the header line, skipped when it is line 1
    header_required: bool = False


def _otto(line: _Line) -> list[Event]:
    data = json.loads(line.text)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    session = str(_integer(_get(data, "session"), "session"))
    events = _get(data, "events")
    if not isinstance(events, list):
        raise ValueError("'events' is not a list")
    out = []
    for index, raw in enumerate(events):
        if not isinstance(raw, dict):
            raise ValueError(f"event {index}: expected a JSON object")
        kind = _get(raw, "type")
        if kind not in OTTO_TYPES:
            raise ValueError(f"event {index}: unknown type {kind!r}")
        ts = _integer(_get(raw, "ts"), f"event {index} ts")
        item = str(_integer(_get(raw, "aid"), f"event {index} aid"))
        # OTTO sessions are anonymous shoppers: the session is also the user.
        out.append(_event(f"otto:{session}:{index}", session, session, item, OTTO_TYPES[kind], ts))
    return out


def _taobao(line: _Line) -> list[Event]:
    user, item, category, behaviour, seconds = line.fields(5)
    ts = _integer(seconds, "timestamp") * 1000
    kind = _mapped(behaviour, TAOBAO_TYPES, "behavior_type")
    return [_event(line.event_id, user, _day_session(user, ts), item, kind, ts, category=category)]


def _retailrocket(line: _Line) -> list[Event]:
    millis, visitor, kind, item, _transaction = line.fields(5)
    ts = _integer(millis, "timestamp")
    event_type = _mapped(kind, RETAILROCKET_TYPES, "event")
    return [_event(line.event_id, visitor, _day_session(visitor, ts), item, event_type, ts)]


def _rees46(line: _Line) -> list[Event]:
    when, kind, product, category, _code, _brand, price, user, session = line.fields(9)
    if not when.endswith(" UTC"):
        raise ValueError(f"event_time {when!r} is not 'YYYY-MM-DD HH:MM:SS UTC'")
    ts = _epoch_ms(datetime.fromisoformat(when[:-4]).replace(tzinfo=UTC))
    return [
        _event(
            line.event_id,
            user,
            session or _day_session(user, ts),  # a few rows have no user_session
            product,
            _mapped(kind, REES46_TYPES, "event_type"),
            ts,
            category=category or None,
            price=float(price) if price else None,
        )
    ]


def _yoochoose(line: _Line) -> list[Event]:
    parts = line.text.split(",")
    if len(parts) not in (4, 5):
        raise ValueError(f"expected 4 (clicks) or 5 (buys) columns, got {len(parts)}")
    session, when, item = parts[:3]
    # ISO 8601 with 'Z', e.g. 2014-04-07T10:51:09.277Z
    ts = _epoch_ms(datetime.fromisoformat(when))
    if len(parts) == 4:  # yoochoose-clicks.dat: category "0" means unknown
        category = parts[3] if parts[3] != "0" else None
        return [_event(line.event_id, session, session, item, CLICK, ts, category=category)]
    # yoochoose-buys.dat: a price or quantity of 0 means unknown
    price, quantity = float(parts[3]), _integer(parts[4], "quantity")
    return [
        _event(
            line.event_id,
            session,
            session,
            item,
            PURCHASE,
            ts,
            price=price or None,
            quantity=quantity or None,
        )
    ]


def _movielens(line: _Line) -> list[Event]:
    # ratings.csv (ml-latest, ml-25m, ml-32m) or the '::'-separated ratings.dat (ml-1m, ml-10m)
    user, movie, rating, seconds = line.fields(4, "::" if "::" in line.text else ",")
    ts = _integer(seconds, "timestamp") * 1000
    kind = PURCHASE if float(rating) >= MOVIELENS_LIKED else VIEW
    return [_event(line.event_id, user, _day_session(user, ts), movie, kind, ts)]


FORMATS: dict[str, _Format] = {
    "otto": _Format(_otto),
    "taobao": _Format(_taobao),
    "retailrocket": _Format(
        _retailrocket, "timestamp,visitorid,event,itemid,transactionid", header_required=True
    ),
    "rees46": _Format(
        _rees46,
        "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,"
        "user_session",
        header_required=True,
    ),
    "yoochoose": _Format(_yoochoose),
    "movielens": _Format(_movielens, "userId,movieId,rating,timestamp"),
}


def read(fmt: str, path: Path, limit: int | None = None) -> Iterator[Event | BadRow]:
    """Stream ``path`` in file order: one valid event per mapped record, a ``BadRow`` per line
    that cannot be mapped (a line whose events are not all valid is rejected whole).

    Stops after ``limit`` events. Raises RtrecError only when the file as a whole is wrong: it
    cannot be opened, lacks a required header, or its first rows are all bad.
    """
    spec = FORMATS.get(fmt)
    if spec is None:
        raise RtrecError(f"unknown replay format {fmt!r} (known: {', '.join(sorted(FORMATS))})")
    name = path.name.removesuffix(".gz")
    produced = bad = 0
    for number, raw in enumerate(_raw_lines(path), start=1):
        events: list[Event] = []
        reason: str | None
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            reason = "not valid UTF-8"
        else:
            if number == 1 and spec.header:
                if text.strip().lower() == spec.header.lower():
                    continue
                if spec.header_required:
                    raise RtrecError(
                        f"{path}: line 1 is not the {fmt} header {spec.header!r} "
                        "(is --format right?)"
                    )
            if not text.strip():
                continue  # blank lines (e.g. a trailing one) carry nothing
            events, reason = _parse(spec.parse, _Line(number, text, f"{fmt}:{name}"))
        if reason is not None:
            bad += 1
            if produced == 0 and bad >= GIVE_UP_AFTER_BAD_ROWS:
                raise RtrecError(
                    f"{path}: the first {bad} rows are not valid {fmt} rows "
                    f"(line {number}: {reason}); is --format right?"
                )
            yield BadRow(number, text, reason)
            continue
        for event in events:
            if limit is not None and produced >= limit:
                return
            produced += 1
            yield event


def replay(
    fmt: str,
    path: Path,
    *,
    limit: int | None = None,
    buffer_events: int = DEFAULT_BUFFER_EVENTS,
) -> Iterator[Event | BadRow]:
    """Bad rows as ``path`` is read, then its events sorted by ``event_ts`` (stable: ties keep
    file order). Memory holds at most ``buffer_events`` events; larger files are merged from
    sorted runs spilled to a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="rtrec-replay-") as tmp:
        runs: list[Path] = []
        buffer: list[Event] = []
        for record in read(fmt, path, limit):
            if isinstance(record, BadRow):
                yield record
                continue
            buffer.append(record)
            if len(buffer) >= buffer_events:
                runs.append(_spill(buffer, Path(tmp) / f"run-{len(runs)}.jsonl"))
                buffer = []
        buffer.sort(key=_event_ts)
        if not runs:
            yield from buffer
            return
        runs.append(_spill(buffer, Path(tmp) / f"run-{len(runs)}.jsonl"))
        del buffer
        # heapq.merge is stable across its inputs, and runs are in file order.
        yield from heapq.merge(*(_load(run) for run in runs), key=_event_ts)


def _parse(parse: Parser, line: _Line) -> tuple[list[Event], str | None]:
    try:
        events = parse(line)
    except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        return [], str(exc)
    for event in events:
        for f in EVENT_SCHEMA.fields:
            error = check_value(f, event[f.name])
            if error:
                return [], error
    return events, None


def _event(
    event_id: str,
    user: str,
    session: str,
    item: str,
    event_type: str,
    ts: int,
    *,
    category: str | None = None,
    price: float | None = None,
    quantity: int | None = None,
) -> Event:
    event: Event = dict.fromkeys(EVENT_SCHEMA.names)
    event.update(
        {
            EVENT_ID: event_id,
            USER_ID: user,
            SESSION_ID: session,
            ITEM_ID: item,
            EVENT_TYPE: event_type,
            EVENT_TS: ts,
            CATEGORY_ID: category,
            PRICE: price,
            QUANTITY: quantity,
        }
    )
    return event


def _day_session(user: str, ts: int) -> str:
    """Datasets without sessions: one session per user and UTC day. Stateless, so it works on
    unsorted files, with --limit and with the external sort (docs/sources.md)."""
    return f"{user}:{datetime.fromtimestamp(ts // 1000, UTC):%Y-%m-%d}"


def _get(data: dict[str, Any], key: str) -> Any:
    if key not in data:
        raise ValueError(f"missing {key!r}")
    return data[key]


def _integer(value: Any, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ValueError(f"{what} is not an integer: {value!r}")


def _mapped(value: str, mapping: dict[str, str], column: str) -> str:
    if value not in mapping:
        raise ValueError(f"unknown {column} {value!r} (known: {', '.join(mapping)})")
    return mapping[value]


def _epoch_ms(when: datetime) -> int:
    """Exact integer milliseconds (float timestamps can round .277 s down to 276 ms)."""
    if when.tzinfo is None:  # the datasets' clocks are UTC
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // timedelta(milliseconds=1)


def _event_ts(event: Event) -> int:
    ts: int = event[EVENT_TS]
    return ts


def _raw_lines(path: Path) -> Iterator[bytes]:
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as lines:
            yield from lines
    except (OSError, EOFError) as exc:  # missing, unreadable, or a corrupt/truncated .gz
        raise RtrecError(f"{path}: cannot read: {exc}") from None


def _spill(events: list[Event], path: Path) -> Path:
    events.sort(key=_event_ts)
    with path.open("w") as out:
        for event in events:
            out.write(json.dumps(event, separators=(",", ":")) + "\n")
    return path


def _load(path: Path) -> Iterator[Event]:
    with path.open() as lines:
        for line in lines:
            event: Event = json.loads(line)
            yield event
