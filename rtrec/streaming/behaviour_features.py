"""Behaviour-features pipeline: validate, dead-letter, deduplicate and count per user.

``build_behaviour_features_pipeline`` does no I/O: it takes the name of a registered raw event
table (columns ``payload`` and ``proc_time``) and returns the result tables, so tests can feed
files and collect results while ``run_behaviour_features_job`` wires Kafka in and out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rtrec.config import Settings
from rtrec.features.user_counts import COUNT_COLUMNS, LAST_EVENT_TS, TOTAL, count_column
from rtrec.schema.events import EVENT_ID, EVENT_TS, EVENT_TYPE, EVENT_TYPES, USER_ID
from rtrec.schema.wire import PARSE_ERROR, PARSED_COLUMNS
from rtrec.streaming.udfs import parse_event_udtf

JOB_NAME = "rtrec-behaviour-features"
SOURCE = "flink:behaviour_features"
USER_FEATURE_COLUMNS = [
    f"`{USER_ID}` STRING NOT NULL",
    *(f"`{c}` BIGINT" for c in COUNT_COLUMNS),
    f"`{LAST_EVENT_TS}` BIGINT",
]


@dataclass(frozen=True)
class BehaviourFeatureTables:
    dead_letters: Any  # raw, reason, source: one row per rejected payload
    user_features: Any  # an updating table keyed by user_id


def build_behaviour_features_pipeline(t_env: Any, raw_events: str) -> BehaviourFeatureTables:
    """Define the job's result tables over the raw event table ``raw_events``."""
    t_env.create_temporary_system_function("parse_event", parse_event_udtf())
    columns = ", ".join(f"`{c}`" for c in PARSED_COLUMNS)
    t_env.execute_sql(
        f"CREATE TEMPORARY VIEW parsed AS SELECT r.payload, r.proc_time, p.* "
        f"FROM `{raw_events}` AS r, LATERAL TABLE(parse_event(r.payload)) AS p({columns})"
    )
    # Keep the first arrival of each event_id: producers re-send on retries.
    t_env.execute_sql(
        f"CREATE TEMPORARY VIEW valid_events AS SELECT * FROM ("
        f" SELECT *, ROW_NUMBER() OVER (PARTITION BY `{EVENT_ID}` ORDER BY proc_time) AS rn"
        f" FROM parsed WHERE `{PARSE_ERROR}` IS NULL) WHERE rn = 1"
    )
    per_type = ", ".join(
        f"SUM(CASE WHEN `{EVENT_TYPE}` = '{t}' THEN 1 ELSE 0 END) AS `{count_column(t)}`"
        for t in EVENT_TYPES
    )
    return BehaviourFeatureTables(
        dead_letters=t_env.sql_query(
            f"SELECT payload AS `raw`, `{PARSE_ERROR}` AS reason, '{SOURCE}' AS source "
            f"FROM parsed WHERE `{PARSE_ERROR}` IS NOT NULL"
        ),
        user_features=t_env.sql_query(
            f"SELECT `{USER_ID}`, COUNT(*) AS `{TOTAL}`, {per_type}, "
            f"MAX(`{EVENT_TS}`) AS `{LAST_EVENT_TS}` FROM valid_events GROUP BY `{USER_ID}`"
        ),
    )


def run_behaviour_features_job(settings: Settings) -> None:
    """Kafka in, Kafka out; runs until cancelled."""
    from rtrec.streaming.environment import create_table_env
    from rtrec.streaming.kafka import dlq_ddl, raw_events_ddl, upsert_ddl

    topics = settings.kafka.topics
    t_env = create_table_env(settings, JOB_NAME)
    group = f"{settings.flink.consumer_group}-features"
    t_env.execute_sql(raw_events_ddl(settings, "events_raw", group))
    t_env.execute_sql(dlq_ddl(settings, "events_dlq"))
    t_env.execute_sql(
        upsert_ddl(settings, "user_features", topics.user_features, USER_FEATURE_COLUMNS, USER_ID)
    )
    tables = build_behaviour_features_pipeline(t_env, "events_raw")
    statements = t_env.create_statement_set()
    statements.add_insert("events_dlq", tables.dead_letters)
    statements.add_insert("user_features", tables.user_features)
    statements.execute().wait()
