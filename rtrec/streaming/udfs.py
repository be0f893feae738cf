"""Python UDFs shared by the Flink jobs. Only logic SQL cannot express lives here."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from rtrec.features.recent import recent_features
from rtrec.schema.events import EVENT_SCHEMA
from rtrec.schema.fields import Kind
from rtrec.schema.wire import parsed_row


def _parse_event(payload: str | None, received: datetime | None) -> Iterator[tuple[Any, ...]]:
    # TIMESTAMP_LTZ arrives as a naive datetime in the session time zone, which the jobs pin to
    # UTC (rtrec.streaming.environment).
    received_ms = (
        None if received is None else round(received.replace(tzinfo=UTC).timestamp() * 1000)
    )
    yield parsed_row(payload, received_ms)


def parse_event_udtf() -> Any:
    """``parse_event(payload [, kafka_ts])`` as a table function, so each payload is validated
    exactly once. Its columns are ``rtrec.schema.wire.PARSED_COLUMNS``."""
    from pyflink.table import DataTypes
    from pyflink.table.udf import udtf

    kinds = {
        Kind.STRING: DataTypes.STRING(),
        Kind.LONG: DataTypes.BIGINT(),
        Kind.INT: DataTypes.INT(),
        Kind.DOUBLE: DataTypes.DOUBLE(),
    }
    result_types = [DataTypes.STRING(), *(kinds[f.kind] for f in EVENT_SCHEMA.fields)]
    return udtf(_parse_event, result_types=result_types, name="parse_event")


def _recent_features(
    items: list[str], categories: list[str], event_types: list[str], timestamps: list[int]
) -> Iterator[tuple[str, dict[str, float]]]:
    yield from recent_features(items, categories, event_types, timestamps).items()


def recent_features_udtf() -> Any:
    """``recent_features(items, categories, event_types, timestamps)``: one row (group,
    features) per recent-behaviour group, from the arrays of a user's last events. A table
    function, so the groups of one event cost one call."""
    from pyflink.table import DataTypes
    from pyflink.table.udf import udtf

    features = DataTypes.MAP(DataTypes.STRING(), DataTypes.DOUBLE())
    return udtf(
        _recent_features, result_types=[DataTypes.STRING(), features], name="recent_features"
    )


LATE_EVENTS_METRIC = "rtrec_late_events"


def late_reason_udf() -> Any:
    """``late_reason(event_ts, watermark)``: the reason string of a late event; it also counts
    the event in the ``rtrec_late_events`` metric, so lateness is visible without the topic."""
    from pyflink.table import DataTypes
    from pyflink.table.udf import FunctionContext, ScalarFunction, udf

    class LateReason(ScalarFunction):  # type: ignore[misc]
        def open(self, function_context: FunctionContext) -> None:
            self.late = function_context.get_metric_group().counter(LATE_EVENTS_METRIC)

        def is_deterministic(self) -> bool:
            return False  # it counts: the planner must not fold or reuse calls

        def eval(self, event_ts: int, watermark: datetime | None) -> str:
            self.late.inc()
            mark = (
                "?"
                if watermark is None
                else round(watermark.replace(tzinfo=UTC).timestamp() * 1000)
            )
            return f"late: event_ts {event_ts} is at or behind the watermark {mark}"

    return udf(LateReason(), result_type=DataTypes.STRING())
