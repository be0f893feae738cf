"""Behaviour features: validate, dead-letter, route late events, deduplicate, then window.

``build_behaviour_features_pipeline`` does no I/O. It reads a registered raw event table with
columns ``payload``, ``kafka_ts`` (when Kafka received it), ``kafka_partition``,
``kafka_offset``, ``proc_time`` and the rowtime ``event_time`` (see
``rtrec.streaming.kafka.raw_events_ddl``), and returns the result tables, so tests feed files
and collect results while ``run_behaviour_features_job`` wires Kafka in and out. All
aggregation is SQL, so it runs in the JVM; Python only validates payloads (the shared
validator), counts late events and turns each user's last events, collected by SQL, into the
recent-behaviour maps (``rtrec.features.recent``).

Forgetting a user (docs/privacy.md): given a table of forget records (``forgets``), every user
output is filtered by an anti-join on it. The totals' input events before the request (Kafka
offsets below the record's) are retracted, so the user's totals are deleted and a later event
counts from one; a window, session or recent record that holds any such event never leaves,
and those already sent are retracted, which the upsert sink writes as tombstones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rtrec.config import Settings
from rtrec.config.settings import AbSettings
from rtrec.features.definitions import (
    CARTS,
    CONVERSION,
    DISTINCT_ITEMS,
    ENTITY_ID,
    EVENTS,
    FEATURE_GROUP,
    FEATURES,
    INTENT_WEIGHTS,
    ITEM_WINDOWS,
    NOT_RECENT,
    PURCHASES,
    RECENT_EVENTS,
    SESSION_GAP_MS,
    SESSION_GROUP,
    SESSION_LENGTH_MS,
    TOTALS_GROUP,
    TRENDING,
    USER_WINDOWS,
    VIEWS,
    WINDOW_END,
    WINDOW_START,
    HopWindow,
    type_count,
)
from rtrec.features.user_counts import LAST_EVENT_TS
from rtrec.schema.events import (
    ADD_TO_CART,
    CATEGORY_ID,
    CLICK,
    EVENT_ID,
    EVENT_SCHEMA,
    EVENT_TS,
    EVENT_TYPE,
    EVENT_TYPES,
    IMPRESSION,
    ITEM_ID,
    MODEL_VERSION,
    PURCHASE,
    REC_ID,
    USER_ID,
    VIEW,
)
from rtrec.schema.flink import FLINK_SQL_TYPES, interval
from rtrec.schema.wire import PARSE_ERROR, PARSED_COLUMNS
from rtrec.scoring.ab import ARM, CLICKS, CTR, IMPRESSIONS, arm_sql
from rtrec.streaming.udfs import (
    late_reason_udf,
    parse_event_udtf,
    recent_features_udtf,
)

JOB_NAME = "rtrec-behaviour-features"
SOURCE = "flink:behaviour_features"
FEATURE_COLUMNS = [
    f"`{ENTITY_ID}` STRING NOT NULL",
    f"`{FEATURE_GROUP}` STRING NOT NULL",
    f"`{WINDOW_START}` BIGINT",
    f"`{WINDOW_END}` BIGINT",
    f"`{FEATURES}` MAP<STRING, DOUBLE>",
]
FEATURE_KEY = (ENTITY_ID, FEATURE_GROUP)
# Kafka coordinates carried through the deduplication when forget records apply.
KAFKA_PARTITION, KAFKA_OFFSET = "kafka_partition", "kafka_offset"
FIRST_OFFSET = "first_offset"  # the lowest offset among the events a user record holds


@dataclass(frozen=True)
class BehaviourFeatureTables:
    dead_letters: Any  # raw, reason, source, Kafka coordinates: payloads that are not events
    late_events: Any  # the same columns: valid events at or behind the watermark
    user_totals: Any  # running totals per user: an updating table keyed (user, group)
    user_features: Any  # window, session and recent records of users (append-only)
    item_features: Any  # window records of items (append-only)
    # Per event-time window, model version and A/B arm: impressions, clicks and purchases of
    # served lists (events carrying a rec_id), CTR and conversion (append-only).
    ab_metrics: Any


def _count(condition: str) -> str:
    return f"CAST(SUM(CASE WHEN {condition} THEN 1 ELSE 0 END) AS DOUBLE)"


def _is(event_type: str) -> str:
    return f"`{EVENT_TYPE}` = '{event_type}'"


def _features(pairs: list[tuple[str, str]]) -> str:
    return "MAP[" + ", ".join(f"'{name}', {expr}" for name, expr in pairs) + f"] AS `{FEATURES}`"


def _epoch_ms(column: str) -> str:
    # Window bounds are whole minutes; TIMESTAMPDIFF in minutes cannot overflow an INT.
    return (
        f"CAST(TIMESTAMPDIFF(MINUTE, TIMESTAMP '1970-01-01 00:00:00', {column}) AS BIGINT) * 60000"
    )


def _hop(
    table: str, key: str, window: HopWindow, features: list[tuple[str, str]], extra: str = ""
) -> str:
    return (
        f"SELECT `{key}` AS `{ENTITY_ID}`, '{window.group}' AS `{FEATURE_GROUP}`, "
        f"{_epoch_ms('window_start')} AS `{WINDOW_START}`, "
        f"{_epoch_ms('window_end')} AS `{WINDOW_END}`, {_features(features)}{extra} "
        f"FROM TABLE(HOP(TABLE {table}, DESCRIPTOR(event_time), "
        f"{interval(window.slide_ms)}, {interval(window.size_ms)})) "
        f"GROUP BY `{key}`, window_start, window_end"
    )


def _forgotten(forgets: str, user: str, partition: str, offset: str) -> str:
    """SQL: a forget record of ``forgets`` covers the row whose user, events-topic partition
    and offset are these columns (the row holds an event sent before the request)."""
    return (
        f"EXISTS (SELECT 1 FROM `{forgets}` AS f WHERE f.`{USER_ID}` = {user} "
        f"AND {offset} < f.offsets[CAST({partition} AS STRING)])"
    )


def build_behaviour_features_pipeline(
    t_env: Any, raw_events: str, ab: AbSettings, forgets: str | None = None
) -> BehaviourFeatureTables:
    """Define the job's result tables over the raw event table ``raw_events``; ``ab`` is the
    A/B split the online metrics follow. ``forgets`` (None: none) is a registered table of
    forget records (``rtrec.streaming.kafka.forget_ddl``): the user outputs honour them."""
    t_env.create_temporary_system_function("parse_event", parse_event_udtf())
    t_env.create_temporary_system_function("late_reason", late_reason_udf())
    t_env.create_temporary_system_function("recent_features", recent_features_udtf())
    columns = ", ".join(f"`{c}`" for c in PARSED_COLUMNS)
    # CURRENT_WATERMARK is this operator's watermark: an event at or behind it would be dropped
    # by every window downstream, so it is routed to the late-events topic instead.
    t_env.execute_sql(
        f"CREATE TEMPORARY VIEW parsed AS SELECT r.payload, r.kafka_partition, r.kafka_offset, "
        f"r.event_time, r.proc_time, p.*, "
        f"COALESCE(r.event_time <= CURRENT_WATERMARK(r.event_time), FALSE) AS is_late, "
        f"CURRENT_WATERMARK(r.event_time) AS `watermark` "
        f"FROM `{raw_events}` AS r, "
        f"LATERAL TABLE(parse_event(r.payload, r.kafka_ts)) AS p({columns})"
    )
    # First arrival of each event_id wins (producers re-send on retries). Ordered by processing
    # time, a row leaves at once (the running totals need that) and event_time stays a time
    # attribute for the windows. A rowtime order would hold each row until the watermark passed
    # it; held across an idle spell of its partition, the row could reach the windows behind a
    # watermark another partition had advanced, and be dropped there without being late here.
    # The event travels through the deduplication as one ROW column: the planner pushes each
    # consumer's column pruning below a deduplication, and consumers that read different
    # columns would then each get a deduplication (keyed state and a shuffle) of their own.
    fields = ", ".join(f"`{name}`" for name in EVENT_SCHEMA.names)
    row_type = ", ".join(f"`{f.name}` {FLINK_SQL_TYPES[f.kind]}" for f in EVENT_SCHEMA.fields)
    names = list(EVENT_SCHEMA.names)
    if forgets is not None:
        # Inside the one ROW column, so every consumer still shares one deduplication.
        fields += f", `{KAFKA_PARTITION}`, `{KAFKA_OFFSET}`"
        row_type += f", `{KAFKA_PARTITION}` INT, `{KAFKA_OFFSET}` BIGINT"
        names += [KAFKA_PARTITION, KAFKA_OFFSET]
    t_env.execute_sql(
        f"CREATE TEMPORARY VIEW accepted_rows AS SELECT event_time, proc_time, ev FROM ("
        f" SELECT event_time, proc_time, CAST(ROW({fields}) AS ROW<{row_type}>) AS ev, "
        f" ROW_NUMBER() OVER (PARTITION BY `{EVENT_ID}` ORDER BY proc_time) AS rn"
        f" FROM parsed WHERE `{PARSE_ERROR}` IS NULL AND NOT is_late) WHERE rn = 1"
    )
    t_env.execute_sql(
        "CREATE TEMPORARY VIEW accepted AS SELECT event_time, proc_time, "
        + ", ".join(f"ev.`{name}` AS `{name}`" for name in names)
        + " FROM accepted_rows"
    )
    # The totals' input: with forget records, the events a request covers are retracted when
    # it arrives (a streaming anti-join), so the user's totals go to none and are deleted.
    totals_input = "accepted"
    if forgets is not None:
        covered = _forgotten(
            forgets, f"a.`{USER_ID}`", f"a.`{KAFKA_PARTITION}`", f"a.`{KAFKA_OFFSET}`"
        )
        t_env.execute_sql(
            f"CREATE TEMPORARY VIEW remembered AS SELECT * FROM accepted AS a WHERE NOT {covered}"
        )
        totals_input = "remembered"
    # Each user record's lowest offset, by which forget records filter them (empty: no filter).
    first = (
        ""
        if forgets is None
        else f", MIN(`{KAFKA_OFFSET}`) AS `{FIRST_OFFSET}`, MIN(`{KAFKA_PARTITION}`) "
        f"AS `{KAFKA_PARTITION}`"
    )
    user_counts = [
        (EVENTS, "CAST(COUNT(*) AS DOUBLE)"),
        *((type_count(t), _count(_is(t))) for t in EVENT_TYPES),
    ]
    trending = " + ".join(f"{weight} * {_count(_is(t))}" for t, weight in INTENT_WEIGHTS.items())
    views, purchases = _count(_is(VIEW)), _count(_is(PURCHASE))
    item_counts = [
        (VIEWS, views),
        (CARTS, _count(_is(ADD_TO_CART))),
        (PURCHASES, purchases),
        (CONVERSION, f"CASE WHEN {views} > 0 THEN {purchases} / {views} ELSE 0.0 END"),
        (TRENDING, trending),
    ]
    session = [
        (EVENTS, "CAST(COUNT(*) AS DOUBLE)"),
        (SESSION_LENGTH_MS, f"CAST(MAX(`{EVENT_TS}`) - MIN(`{EVENT_TS}`) AS DOUBLE)"),
        (DISTINCT_ITEMS, f"CAST(COUNT(DISTINCT `{ITEM_ID}`) AS DOUBLE)"),
        (CARTS, _count(_is(ADD_TO_CART))),
        (PURCHASES, purchases),
    ]
    # The planner drops a constant from the upsert key, and an upsert key that is not the
    # sink's primary key makes every update a tombstone plus an insert. A group name derived
    # from the user column survives as a grouping key, so updates stay single upserts. It reads
    # event_time too, only so that this consumer prunes the same columns as the others and
    # shares their deduplication.
    totals = (
        f"SELECT `{USER_ID}` AS `{ENTITY_ID}`, `{FEATURE_GROUP}`, "
        f"MIN(`{EVENT_TS}`) AS `{WINDOW_START}`, MAX(`{EVENT_TS}`) AS `{WINDOW_END}`, "
        f"{_features([*user_counts, (LAST_EVENT_TS, f'CAST(MAX(`{EVENT_TS}`) AS DOUBLE)')])} "
        f"FROM (SELECT *, CONCAT('{TOTALS_GROUP}', SUBSTRING(`{USER_ID}`, 1, 0), "
        f"SUBSTRING(CAST(event_time AS STRING), 1, 0)) "
        f"AS `{FEATURE_GROUP}` FROM {totals_input}) "
        f"GROUP BY `{USER_ID}`, `{FEATURE_GROUP}`"
    )
    user_queries = [
        *(_hop("accepted", USER_ID, window, user_counts, first) for window in USER_WINDOWS),
        f"SELECT `{USER_ID}` AS `{ENTITY_ID}`, '{SESSION_GROUP}' AS `{FEATURE_GROUP}`, "
        f"MIN(`{EVENT_TS}`) AS `{WINDOW_START}`, "
        f"MAX(`{EVENT_TS}`) + {SESSION_GAP_MS} AS `{WINDOW_END}`, {_features(session)}{first} "
        f"FROM TABLE(SESSION(TABLE accepted PARTITION BY `{USER_ID}`, DESCRIPTOR(event_time), "
        f"{interval(SESSION_GAP_MS)})) GROUP BY `{USER_ID}`, window_start, window_end",
    ]
    # The user's last events collected in the JVM by a rows OVER window (emitted per event when
    # the watermark passes it); the arrays stay aligned because the row leaving the window is
    # always the oldest, so each ARRAY_AGG drops its first equal element, which is that row's.
    # Python only turns the arrays into maps and sums the decayed weights.
    not_recent = ", ".join(f"'{t}'" for t in NOT_RECENT)
    recent_first = (
        ""
        if forgets is None
        else f"MIN(`{KAFKA_OFFSET}`) OVER w AS `{FIRST_OFFSET}`, "
        f"MIN(`{KAFKA_PARTITION}`) OVER w AS `{KAFKA_PARTITION}`, "
    )
    t_env.execute_sql(
        f"CREATE TEMPORARY VIEW recent_events AS SELECT `{USER_ID}`, `{EVENT_TS}`, {recent_first}"
        f"MIN(`{EVENT_TS}`) OVER w AS first_ts, ARRAY_AGG(`{ITEM_ID}`) OVER w AS items, "
        f"ARRAY_AGG(COALESCE(`{CATEGORY_ID}`, '')) OVER w AS categories, "
        f"ARRAY_AGG(`{EVENT_TYPE}`) OVER w AS event_types, "
        f"ARRAY_AGG(`{EVENT_TS}`) OVER w AS timestamps "
        f"FROM accepted WHERE `{EVENT_TYPE}` NOT IN ({not_recent}) "
        f"WINDOW w AS (PARTITION BY `{USER_ID}` ORDER BY event_time "
        f"ROWS BETWEEN {RECENT_EVENTS - 1} PRECEDING AND CURRENT ROW)"
    )
    user_queries.append(
        f"SELECT `{USER_ID}` AS `{ENTITY_ID}`, g.`{FEATURE_GROUP}`, first_ts AS `{WINDOW_START}`, "
        f"`{EVENT_TS}` AS `{WINDOW_END}`, g.`{FEATURES}`"
        + ("" if forgets is None else f", `{FIRST_OFFSET}`, `{KAFKA_PARTITION}`")
        + " FROM recent_events, "
        f"LATERAL TABLE(recent_features(items, categories, event_types, timestamps)) "
        f"AS g(`{FEATURE_GROUP}`, `{FEATURES}`)"
    )
    item_queries = [_hop("accepted", ITEM_ID, window, item_counts) for window in ITEM_WINDOWS]
    # Events answering a served list, with the arm the scoring job served the user from.
    t_env.execute_sql(
        f"CREATE TEMPORARY VIEW answered AS SELECT *, "
        f"{arm_sql(f'`{USER_ID}`', ab.challenger_share, ab.salt)} AS arm FROM accepted "
        f"WHERE `{REC_ID}` IS NOT NULL AND `{MODEL_VERSION}` IS NOT NULL"
    )
    impressions = f"SUM(CASE WHEN {_is(IMPRESSION)} THEN 1 ELSE 0 END)"
    clicks = f"SUM(CASE WHEN {_is(CLICK)} THEN 1 ELSE 0 END)"
    bought = f"SUM(CASE WHEN {_is(PURCHASE)} THEN 1 ELSE 0 END)"
    ab_metrics = (
        f"SELECT {_epoch_ms('window_start')} AS `{WINDOW_START}`, "
        f"{_epoch_ms('window_end')} AS `{WINDOW_END}`, `{MODEL_VERSION}`, arm AS `{ARM}`, "
        f"{impressions} AS `{IMPRESSIONS}`, {clicks} AS `{CLICKS}`, {bought} AS `{PURCHASES}`, "
        f"CASE WHEN {impressions} > 0 THEN CAST({clicks} AS DOUBLE) / {impressions} END "
        f"AS `{CTR}`, "
        f"CASE WHEN {impressions} > 0 THEN CAST({bought} AS DOUBLE) / {impressions} END "
        f"AS `{CONVERSION}` "
        f"FROM TABLE(TUMBLE(TABLE answered, "
        f"DESCRIPTOR(event_time), {interval(ab.metrics_window_ms)})) "
        f"GROUP BY window_start, window_end, `{MODEL_VERSION}`, arm"
    )
    return BehaviourFeatureTables(
        dead_letters=t_env.sql_query(
            f"SELECT payload AS `raw`, `{PARSE_ERROR}` AS reason, '{SOURCE}' AS source, "
            f"kafka_partition, kafka_offset FROM parsed WHERE `{PARSE_ERROR}` IS NOT NULL"
        ),
        late_events=t_env.sql_query(
            f"SELECT payload AS `raw`, late_reason(`{EVENT_TS}`, `watermark`) AS reason, "
            f"'{SOURCE}' AS source, kafka_partition, kafka_offset "
            f"FROM parsed WHERE `{PARSE_ERROR}` IS NULL AND is_late"
        ),
        user_totals=t_env.sql_query(totals),
        user_features=_user_features(t_env, " UNION ALL ".join(user_queries), forgets),
        item_features=t_env.sql_query(" UNION ALL ".join(item_queries)),
        ab_metrics=t_env.sql_query(ab_metrics),
    )


def _user_features(t_env: Any, union: str, forgets: str | None) -> Any:
    """The user records of ``union``; with forget records, those holding an event a request
    covers are left out, and retracted if already sent (a streaming anti-join)."""
    if forgets is None:
        return t_env.sql_query(union)
    covered = _forgotten(
        forgets, f"u.`{ENTITY_ID}`", f"u.`{KAFKA_PARTITION}`", f"u.`{FIRST_OFFSET}`"
    )
    return t_env.sql_query(
        f"SELECT u.`{ENTITY_ID}`, u.`{FEATURE_GROUP}`, u.`{WINDOW_START}`, u.`{WINDOW_END}`, "
        f"u.`{FEATURES}` FROM ({union}) AS u WHERE NOT {covered}"
    )


def run_behaviour_features_job(settings: Settings) -> None:
    """Kafka in, Kafka out; runs until cancelled."""
    from rtrec.streaming.environment import create_table_env
    from rtrec.streaming.kafka import dlq_ddl, forget_ddl, raw_events_ddl, upsert_ddl

    topics = settings.kafka.topics
    t_env = create_table_env(settings, JOB_NAME)
    # A Python operator hands its results back when a bundle closes; Flink's 1 s default would
    # add up to a second to every event's latency at moderate rates. (The CF job keeps the
    # default: its Python operators pass many records per event, and short bundles slowed it.)
    t_env.get_config().set("python.fn-execution.bundle.time", "100")
    group = f"{settings.flink.consumer_group}-features"
    t_env.execute_sql(raw_events_ddl(settings, "events_raw", group))
    t_env.execute_sql(forget_ddl(settings, "forgets", group))
    # Retracted user records (forgotten users) go to the upsert sink as tombstones as they
    # come: a materializer would hold every record ever sent per key to order them, and
    # these retractions never race a newer record of the key (docs/privacy.md).
    t_env.get_config().set("table.exec.sink.upsert-materialize", "NONE")
    t_env.execute_sql(dlq_ddl(settings, "events_dlq", topics.dlq))
    t_env.execute_sql(dlq_ddl(settings, "events_late", topics.late_events))
    for table, topic in (
        ("user_totals", topics.user_features),
        ("user_features", topics.user_features),
        ("item_features", topics.item_features),
    ):
        t_env.execute_sql(upsert_ddl(settings, table, topic, FEATURE_COLUMNS, FEATURE_KEY))
    ab_columns = [
        f"`{WINDOW_START}` BIGINT NOT NULL",
        f"`{WINDOW_END}` BIGINT",
        f"`{MODEL_VERSION}` STRING NOT NULL",
        f"`{ARM}` STRING NOT NULL",
        *(f"`{name}` INT" for name in (IMPRESSIONS, CLICKS, PURCHASES)),
        *(f"`{name}` DOUBLE" for name in (CTR, CONVERSION)),
    ]
    t_env.execute_sql(
        upsert_ddl(
            settings,
            "ab_metrics",
            topics.ab_metrics,
            ab_columns,
            [WINDOW_START, MODEL_VERSION, ARM],
        )
    )
    tables = build_behaviour_features_pipeline(
        t_env, "events_raw", settings.scoring.ab, forgets="forgets"
    )
    statements = t_env.create_statement_set()
    statements.add_insert("events_dlq", tables.dead_letters)
    statements.add_insert("events_late", tables.late_events)
    statements.add_insert("user_totals", tables.user_totals)
    statements.add_insert("user_features", tables.user_features)
    statements.add_insert("item_features", tables.item_features)
    statements.add_insert("ab_metrics", tables.ab_metrics)
    result = statements.execute()
    # A local run waits: its mini-cluster lives in this process. Under `flink run --detached`
    # (`rtrec submit`) the client only submits, and a wait would hold it for the job's life.
    if t_env.get_config().get("execution.attached", "true").lower() != "false":
        result.wait()
