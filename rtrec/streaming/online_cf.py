"""Online item-item CF on Flink: the four keyed stages of docs/online_cf.md around ``rtrec.cf``.

``build_online_cf_pipeline`` does no I/O: it takes a DataStream of ``rtrec.cf.CfEvent`` carrying
event-time timestamps and watermarks, and returns the output DataStreams, so a test feeds a
collection while ``run_online_cf_job`` wires Kafka in and out. The operators only load state,
call the pure functions and route what they return; the coalesced fan-outs (``flush_row``,
``flush_neighbours``) run on event-time timers, which the final watermark of a bounded input
fires, so a bounded run ends at quiescence, and on a processing-time fallback for when event
time stops (see ``build_online_cf_pipeline``).

Forgetting a user (docs/privacy.md): a ``rtrec.privacy.ForgetUser`` in the optional
``forgets`` stream clears the user's history, unsubscribes the user from the items it held and
clears their scores, which end as an empty list: the topic's "no candidates" record, which
the online-store sync deletes. Item rows and rankings are aggregates over everybody's
histories and keep the user's past contribution until it decays out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from rtrec.cf import (
    CfEvent,
    CfParams,
    CfScores,
    NeighbourPush,
    Neighbours,
    NeighbourState,
    NormUpdate,
    Outcome,
    PartnerUpdate,
    RowState,
    ScoreState,
    Subscription,
    UserProfile,
    UserState,
    apply_partner_update,
    apply_profile,
    apply_push,
    apply_row_delta,
    apply_user_event,
    cf_params,
    flush_neighbours,
    flush_row,
    push_on_subscription,
    push_to_subscribers,
)
from rtrec.cf.records import NEIGHBOURS, SCORE, SCORES
from rtrec.config import Settings
from rtrec.privacy import ForgetUser
from rtrec.schema.events import EVENT_ID, EVENT_TS, EVENT_TYPE, ITEM_ID, USER_ID
from rtrec.schema.flink import EVENT_TIME
from rtrec.schema.wire import PARSE_ERROR, PARSED_COLUMNS

JOB_NAME = "rtrec-online-cf"
NO_TIMESTAMP = -(2**63)  # what PyFlink reports for a record without one (Long.MIN_VALUE)
NEIGHBOUR_ROW_NAMES = [ITEM_ID, SCORE]


@dataclass(frozen=True)
class OnlineCfStreams:
    neighbours: Any  # DataStream of rtrec.cf.Neighbours: the latest per item is current
    scores: Any  # DataStream of rtrec.cf.CfScores: the latest per user is current


def build_online_cf_pipeline(
    events: Any,
    params: CfParams,
    flush_interval_ms: int,
    idle_flush_ms: int | None = None,
    state_ttl_ms: int | None = None,
    forgets: Any = None,
) -> OnlineCfStreams:
    """Wire the four stages over ``events``, a DataStream of CfEvent with event-time
    timestamps and watermarks in which each user's events are still in arrival order (keep
    every connection before this FORWARD, as ``read_valid_events`` does).

    ``flush_interval_ms`` is the event-time period of the coalesced fan-outs. ``idle_flush_ms``
    (None: none) bounds in wall-clock time how long a pending fan-out waits, because event time
    can stop: the watermark stays behind the last events while the input is quiet, and a PyFlink
    operator that holds a watermark until its bundle ends drops it if the idle status of the
    source overtakes it (it forwards the status at once, and an idle output discards
    watermarks), so after a catch-up the last one may never arrive. Flushes are idempotent, so
    whichever timer comes second finds nothing to do. ``state_ttl_ms`` is the processing-time
    safety TTL on all state (None: none). ``forgets`` (None: none) is a DataStream of
    ``ForgetUser`` whose watermarks never hold event time back (``read_forgets``).
    """
    from pyflink.common import Time, Types
    from pyflink.datastream import KeyedProcessFunction, OutputTag, RuntimeContext
    from pyflink.datastream.state import (
        MapStateDescriptor,
        StateTtlConfig,
        ValueStateDescriptor,
    )

    # Type infos cache Java objects once used, and the functions below are pickled with their
    # closures: so each use builds its own instead of sharing one.
    subscriptions_tag = OutputTag("subscriptions", Types.PICKLED_BYTE_ARRAY())
    profiles_tag = OutputTag("profiles", Types.PICKLED_BYTE_ARRAY())
    pushes_tag = OutputTag("pushes", Types.PICKLED_BYTE_ARRAY())

    def with_ttl(descriptor: Any) -> Any:
        if state_ttl_ms is not None:
            descriptor.enable_time_to_live(
                StateTtlConfig.new_builder(Time.milliseconds(state_ttl_ms)).build()
            )
        return descriptor

    def value_state(context: RuntimeContext, name: str) -> Any:
        return context.get_state(with_ttl(ValueStateDescriptor(name, Types.PICKLED_BYTE_ARRAY())))

    def schedule_flush(ctx: Any) -> None:
        timers = ctx.timer_service()
        timestamp = ctx.timestamp()
        if timestamp is None or timestamp == NO_TIMESTAMP:  # sent by a processing-time flush
            timestamp = timers.current_watermark()
        # Aligned boundaries, so a burst of changes on one key shares one timer of each kind
        # (Flink keeps one per key and time).
        timers.register_event_time_timer(_next_boundary(timestamp, flush_interval_ms))
        if idle_flush_ms is not None:
            wall = timers.current_processing_time()
            timers.register_processing_time_timer(_next_boundary(wall, idle_flush_ms))

    class History(KeyedProcessFunction):  # type: ignore[misc]
        """Stage 1, keyed by user."""

        def open(self, context: RuntimeContext) -> None:
            self.state = value_state(context, "user")
            metrics = context.get_metrics_group()
            self.ignored = {
                outcome: metrics.counter(f"rtrec_cf_{outcome.value}_events")
                for outcome in (Outcome.DUPLICATE, Outcome.LATE)
            }

        def process_element(self, event: CfEvent | ForgetUser, ctx: Any) -> Iterator[Any]:
            if isinstance(event, ForgetUser):
                held = self.state.value() or UserState()
                self.state.clear()
                for item in sorted({entry.item for entry in held.history}):
                    yield subscriptions_tag, Subscription(item, event.user_id, False)
                yield profiles_tag, event
                return
            state, step = apply_user_event(self.state.value() or UserState(), event, params)
            if step.outcome in self.ignored:
                self.ignored[step.outcome].inc()
            if step.outcome is not Outcome.APPLIED:
                return
            self.state.update(state)
            yield from step.row_deltas
            for subscription in step.subscriptions:
                yield subscriptions_tag, subscription
            yield profiles_tag, step.profile

    class Rows(KeyedProcessFunction):  # type: ignore[misc]
        """Stage 2, keyed by item."""

        def open(self, context: RuntimeContext) -> None:
            self.state = value_state(context, "row")

        def process_element(self, delta: Any, ctx: Any) -> Iterator[PartnerUpdate | NormUpdate]:
            before = self.state.value() or RowState()
            state, messages = apply_row_delta(before, delta, params)
            if state.norm_moved and not before.norm_moved:
                schedule_flush(ctx)
            self.state.update(state)
            yield from messages

        def on_timer(self, timestamp: int, ctx: Any) -> Iterator[PartnerUpdate]:
            state, messages = flush_row(ctx.get_current_key(), self.state.value() or RowState())
            self.state.update(state)
            yield from messages

    class ItemNeighbours(KeyedProcessFunction):  # type: ignore[misc]
        """Stage 3, keyed by item: rankings and the users subscribed to them."""

        def open(self, context: RuntimeContext) -> None:
            self.state = value_state(context, "neighbours")
            self.subscribers = context.get_map_state(
                with_ttl(MapStateDescriptor("subscribers", Types.STRING(), Types.BOOLEAN()))
            )

        def process_element(self, message: Any, ctx: Any) -> Iterator[Any]:
            before = self.state.value() or NeighbourState()
            if isinstance(message, Subscription):
                if message.active:
                    self.subscribers.put(message.user, True)
                else:
                    self.subscribers.remove(message.user)
                yield pushes_tag, push_on_subscription(message, before.neighbours)
                return
            state = apply_partner_update(before, message, params)
            if state.neighbours != state.published and before.neighbours == before.published:
                schedule_flush(ctx)
            self.state.update(state)

        def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
            item = ctx.get_current_key()
            state, changed = flush_neighbours(item, self.state.value() or NeighbourState())
            if changed is None:
                return
            self.state.update(state)
            yield changed
            for push in push_to_subscribers(changed, self.subscribers.keys()):
                yield pushes_tag, push

    class Scores(KeyedProcessFunction):  # type: ignore[misc]
        """Stage 4, keyed by user."""

        def open(self, context: RuntimeContext) -> None:
            self.state = value_state(context, "scores")
            # Set by a forget until the user's next profile: lists still in flight to a
            # forgotten user are dropped, not kept under their key.
            self.forgotten = context.get_state(
                with_ttl(ValueStateDescriptor("forgotten", Types.BOOLEAN()))
            )

        def process_element(self, message: Any, ctx: Any) -> Iterator[CfScores]:
            before = self.state.value() or ScoreState()
            if isinstance(message, ForgetUser):
                self.state.clear()
                self.forgotten.update(True)
                if before.scores:  # the empty list is the topic's "no candidates" record
                    yield CfScores(message.user_id, ())
                return
            if isinstance(message, UserProfile):
                self.forgotten.clear()
            elif self.forgotten.value():
                return
            if isinstance(message, UserProfile):
                state, scores = apply_profile(before, message, params)
            else:
                state, scores = apply_push(before, message, params)
            self.state.update(state)
            if scores is not None:
                yield scores

    string = Types.STRING()
    history = (
        (events if forgets is None else events.union(forgets))
        .key_by(_user_of, key_type=string)
        .process(History(), Types.PICKLED_BYTE_ARRAY())
        .name("history")
    )
    rows = (
        history.key_by(_item_of, key_type=string)
        .process(Rows(), Types.PICKLED_BYTE_ARRAY())
        .name("rows")
    )
    item_neighbours = (
        rows.union(history.get_side_output(subscriptions_tag))
        .key_by(_item_of, key_type=string)
        .process(ItemNeighbours(), Types.PICKLED_BYTE_ARRAY())
        .name("neighbours")
    )
    scores = (
        history.get_side_output(profiles_tag)
        .union(item_neighbours.get_side_output(pushes_tag))
        .key_by(_user_of, key_type=string)
        .process(Scores(), Types.PICKLED_BYTE_ARRAY())
        .name("scores")
    )
    return OnlineCfStreams(neighbours=item_neighbours, scores=scores)


def read_valid_events(t_env: Any, raw_events: str) -> Any:
    """The valid events of the registered raw event table ``raw_events`` (columns ``payload``,
    ``kafka_ts`` and the rowtime, see ``rtrec.streaming.kafka.raw_events_ddl``) as a DataStream
    of CfEvent whose timestamps and watermarks are the table's event time.

    Every step after the source is a forward connection, so each user's events keep the order
    of their Kafka partition; invalid payloads are the behaviour-features job's to dead-letter.
    """
    return read_events(
        t_env, raw_events, (EVENT_ID, USER_ID, ITEM_ID, EVENT_TYPE, EVENT_TS), CfEvent
    )


def read_events(t_env: Any, raw_events: str, names: Sequence[str], make: Callable[..., Any]) -> Any:
    """The valid events of ``raw_events`` as a DataStream of ``make(*values of names)``,
    stamped with their event time (a forward chain from the source: partition order kept)."""
    from pyflink.common import Types

    from rtrec.streaming.udfs import parse_event_udtf

    t_env.create_temporary_system_function("parse_event", parse_event_udtf())
    fields = ", ".join(f"p.`{f}`" for f in names)
    columns = ", ".join(f"`{c}`" for c in PARSED_COLUMNS)
    # The rowtime column must be selected: it is what to_data_stream stamps on each record.
    # Without it every record carries Long.MIN_VALUE, and each flush timer was due at once.
    valid = t_env.sql_query(
        f"SELECT {fields}, r.`{EVENT_TIME}` FROM `{raw_events}` AS r, "
        f"LATERAL TABLE(parse_event(r.payload, r.kafka_ts)) AS p({columns}) "
        f"WHERE p.`{PARSE_ERROR}` IS NULL"
    )
    return t_env.to_data_stream(valid).map(
        lambda row: make(*row[:-1]), output_type=Types.PICKLED_BYTE_ARRAY()
    )


def read_forgets(t_env: Any, settings: Settings, group_id: str) -> Any:
    """The forget records of ``kafka.topics.forget`` as a DataStream of ``ForgetUser``.

    Joined to the events, this stream's watermark would hold event time back (an operator
    takes the lowest of its inputs'), and the topic is mostly silent: so its watermark runs
    far ahead of any event time, and a partition without records for a second is idle, which
    takes it out of that minimum (``rtrec.streaming.kafka.forget_ddl``)."""
    from pyflink.common import Types

    from rtrec.streaming.kafka import forget_ddl

    t_env.execute_sql(forget_ddl(settings, "forgets", group_id, watermarked=True))
    rows = t_env.sql_query(
        f"SELECT `{USER_ID}`, `{EVENT_TIME}` FROM forgets WHERE `{USER_ID}` IS NOT NULL"
    )
    return t_env.to_data_stream(rows).map(
        lambda row: ForgetUser(row[0]), output_type=Types.PICKLED_BYTE_ARRAY()
    )


def run_online_cf_job(settings: Settings) -> None:
    """Kafka in, Kafka out (upsert topics keyed by item and by user); runs until cancelled."""
    from pyflink.common import Types

    from rtrec.streaming.kafka import raw_events_ddl, upsert_ddl
    from rtrec.streaming.stream_env import create_stream_env

    cf = settings.cf
    params = cf_params(cf)
    env, t_env = create_stream_env(settings, JOB_NAME)
    topics = settings.kafka.topics
    t_env.execute_sql(raw_events_ddl(settings, "events_raw", f"{settings.flink.consumer_group}-cf"))
    events = read_valid_events(t_env, "events_raw")
    streams = build_online_cf_pipeline(
        events,
        params,
        cf.flush_interval_ms,
        idle_flush_ms=cf.idle_flush_ms,
        state_ttl_ms=cf.state_ttl_ms,
        forgets=read_forgets(t_env, settings, f"{settings.flink.consumer_group}-cf"),
    )

    ranked = Types.OBJECT_ARRAY(
        Types.ROW_NAMED(NEIGHBOUR_ROW_NAMES, [Types.STRING(), Types.DOUBLE()])
    )
    neighbour_rows = streams.neighbours.map(
        _neighbours_row,
        output_type=Types.ROW_NAMED([ITEM_ID, NEIGHBOURS], [Types.STRING(), ranked]),
    )
    score_rows = streams.scores.map(
        _scores_row, output_type=Types.ROW_NAMED([USER_ID, SCORES], [Types.STRING(), ranked])
    )
    ranked_sql = f"ARRAY<ROW<`{ITEM_ID}` STRING, `{SCORE}` DOUBLE>>"
    t_env.execute_sql(
        upsert_ddl(
            settings,
            "item_neighbours",
            topics.item_neighbours,
            [f"`{ITEM_ID}` STRING NOT NULL", f"`{NEIGHBOURS}` {ranked_sql}"],
            ITEM_ID,
        )
    )
    t_env.execute_sql(
        upsert_ddl(
            settings,
            "cf_scores",
            topics.cf_scores,
            [f"`{USER_ID}` STRING NOT NULL", f"`{SCORES}` {ranked_sql}"],
            USER_ID,
        )
    )
    statements = t_env.create_statement_set()
    statements.add_insert("item_neighbours", t_env.from_data_stream(neighbour_rows))
    statements.add_insert("cf_scores", t_env.from_data_stream(score_rows))
    statements.attach_as_datastream()
    env.execute(JOB_NAME)


def _next_boundary(time_ms: int, period_ms: int) -> int:
    return (time_ms // period_ms + 1) * period_ms


def _user_of(message: CfEvent | UserProfile | NeighbourPush | ForgetUser) -> str:
    return message.user_id if isinstance(message, CfEvent | ForgetUser) else message.user


def _item_of(message: Any) -> str:
    return str(message.item)


def _neighbours_row(record: Neighbours) -> Any:
    from pyflink.common import Row

    return Row(record.item, [Row(item, score) for item, score in record.neighbours])


def _scores_row(record: CfScores) -> Any:
    from pyflink.common import Row

    return Row(record.user, [Row(item, score) for item, score in record.scores])
