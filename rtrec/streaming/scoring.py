"""The Flink scoring job: each interaction becomes that user's fresh top-K, scored with the
model version the registry's aliases name, swapped while the job runs (docs/scoring.md).

``build_scoring_pipeline`` does no I/O: it takes DataStreams of ``ScoringEvent`` (event-time
stamped), ``UserCfScores`` and ``ModelControl`` and returns a DataStream of
``rtrec.scoring.recommend.Recommendation``; ``run_scoring_job`` wires Kafka in and out.

One operator, keyed by user and connected to a broadcast of every event and every control
record:

- **Keyed side.** The user's recent behaviour and latest online-CF scores live in keyed state.
  An interaction stores a request in the user's keyed state and sets a processing-time timer on
  the next ``batch_wait_ms`` boundary (and an event-time one, for the end of a bounded input).
  The timers of all users due at one boundary fire together, and the first of them scores every
  request the operator holds, with one deep-model call per version. So the model runs batched,
  and every request survives a failure in keyed state (a restored request is scored when its
  timer fires). A list is computed by ``rtrec.scoring.recommend`` from the request and the
  signals at scoring time; one re-emitted after a restore carries the same ``rec_id`` and
  replaces the earlier one in the upsert topic (keyed by user).
- **Broadcast side.** Events feed the trending counts per context, the popularity per category,
  the item facts (category, price) that content neighbours and rules need, and each item's
  impressions and clicks (Thompson exploration); control records name the versions to serve.
  All are kept in broadcast state, so a restore resumes them.
- **Models.** ``rtrec.registry.live.LiveModels`` loads a version in a background thread and
  swaps it in between records; a failed load keeps the current model and is counted and
  logged. A registry poll (``AliasPoller``) is the safety net for a missed control record.
- **Forget** (docs/privacy.md). A ``rtrec.privacy.ForgetUser`` on the keyed side drops the
  user's state and held requests and passes on, so the job deletes the user's list (a
  tombstone on the upsert topic). The broadcast counts (trending, popularity, CTR) are
  aggregates over everybody and keep the user's past contribution until it decays.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from rtrec.cf.records import SCORE, SCORES
from rtrec.config import Settings
from rtrec.privacy import ForgetUser
from rtrec.registry.mlflow_registry import CHALLENGER, CHAMPION
from rtrec.schema.events import (
    ADD_TO_CART,
    CATEGORY_ID,
    CLICK,
    DEVICE,
    EVENT_ID,
    EVENT_TS,
    EVENT_TYPE,
    IMPRESSION,
    ITEM_ID,
    MODEL_VERSION,
    PRICE,
    PURCHASE,
    REC_ID,
    USER_ID,
    VIEW,
)
from rtrec.scoring.ab import ARM, CHALLENGER_ARM, CHAMPION_ARM, Arm, assign_arm
from rtrec.scoring.recommend import (
    NO_MODEL,
    Policy,
    Recommendation,
    Signals,
    recommend,
    scoring_policy,
)
from rtrec.scoring.rules import ItemInfo
from rtrec.scoring.signals import (
    DecayedCounts,
    Interaction,
    UserView,
    content_neighbours,
    context_of,
    merge_facts,
)

JOB_NAME = "rtrec-scoring"
# Latency over throughput: a list must be readable within a second of its event
# (docs/scoring.md, "Freshness", measures what each setting gained).
LATENCY_OPTIONS = {
    # A Python operator hands its output back when its bundle closes (by default after up to a
    # second). The event passes two Python operators, and the keyed one twice (the event, then
    # its timer).
    "python.fn-execution.bundle.time": "20",
    # A record waits in a network buffer for up to this long before the buffer is sent
    # (Flink's default 100 ms, paid at every exchange between tasks).
    "execution.buffer-timeout.interval": "10 ms",
}
LOG = logging.getLogger(__name__)
TRIGGERS = frozenset({VIEW, CLICK, ADD_TO_CART, PURCHASE})  # what a shopper does, not sees
ITEMS, SOURCE, REASON, COMPUTED_AT = "items", "source", "reason", "computed_at"
ModelLoader = Callable[[str], Any]
AliasReader = Callable[[Iterable[str]], dict[str, str]]


@dataclass(frozen=True, slots=True)
class ScoringEvent:
    event_id: str
    user_id: str
    item_id: str
    event_type: str
    event_ts: int
    category_id: str | None
    price: float | None
    device: str | None


@dataclass(frozen=True, slots=True)
class UserCfScores:
    user_id: str
    scores: tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class ModelControl:
    alias: str
    version: str


@dataclass(frozen=True)
class ScoringParams:
    policy: Policy
    event_weights: dict[str, float]  # how much an event type adds to trending and popularity
    recent_items: int
    purchases_kept: int
    half_life_ms: int
    trending_items: int
    content_per_anchor: int
    content_anchors: int
    challenger_share: float
    ab_salt: str
    batch_wait_ms: int
    registry_poll_s: float
    model_load_timeout_s: float


def scoring_params(settings: Settings) -> ScoringParams:
    scoring = settings.scoring
    return ScoringParams(
        scoring_policy(scoring),
        dict(settings.cf.weights),
        scoring.recent_items,
        scoring.purchases_kept,
        scoring.trending_half_life_ms,
        scoring.trending_items,
        scoring.content_per_anchor,
        scoring.content_anchors,
        scoring.ab.challenger_share,
        scoring.ab.salt,
        scoring.batch_wait_ms,
        scoring.registry_poll_s,
        scoring.model_load_timeout_s,
    )


@dataclass(frozen=True, slots=True)
class _Request:
    user: str
    event_id: str
    event_ts: int
    context: str
    view: UserView
    cf: tuple[tuple[str, float], ...]


def build_scoring_pipeline(
    events: Any,
    cf_scores: Any,
    control: Any,
    params: ScoringParams,
    load_model: ModelLoader,
    read_aliases: AliasReader | None = None,
    forgets: Any = None,
) -> Any:
    """Recommendations for the interactions in ``events``. ``load_model(version)`` returns an
    object with ``scores(histories) -> (rows, items)`` and ``vocabulary`` (the registered
    ``SasRecRecommender``); ``read_aliases`` (None: no poll, no model until a control record)
    reads the registry's alias versions at start and as the safety net. ``forgets`` (None:
    none) is a DataStream of ``ForgetUser``; each is passed on in the output after the user's
    state is dropped, so the output holds ``Recommendation`` and ``ForgetUser``."""
    from pyflink.common import Types
    from pyflink.datastream import KeyedBroadcastProcessFunction, RuntimeContext
    from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

    from rtrec.registry.live import AliasPoller, LiveModels

    pickled = Types.PICKLED_BYTE_ARRAY()

    # One descriptor object per use: PyFlink caches Java objects on type infos (online_cf.py).
    def broadcast_descriptor() -> Any:
        return MapStateDescriptor("scoring-broadcast", Types.STRING(), Types.PICKLED_BYTE_ARRAY())

    class Scorer(KeyedBroadcastProcessFunction):  # type: ignore[misc]
        def open(self, context: RuntimeContext) -> None:
            def state(name: str) -> Any:
                return context.get_state(ValueStateDescriptor(name, Types.PICKLED_BYTE_ARRAY()))

            self.view, self.cf, self.pending = state("view"), state("cf"), state("pending")
            metrics = context.get_metrics_group()
            self.swaps = metrics.counter("rtrec_model_swaps")
            self.failures = metrics.counter("rtrec_model_load_failures")
            self.lists = metrics.counter("rtrec_recommendations")
            self.models: LiveModels[Any] = LiveModels(load_model)
            self.poller = None
            self.polled: dict[str, str] = {}  # the registry's last answer
            self.restored = False
            # Global signals: mirrored from broadcast state, which is what checkpoints hold.
            self.trending: dict[str, DecayedCounts] = {}
            self.by_category: dict[str, DecayedCounts] = {}
            self.facts: dict[str, ItemInfo] = {}
            self.ctr: dict[str, tuple[int, int]] = {}  # item -> impressions, clicks
            self.control: dict[str, str] = {}
            # Requests this instance holds, by user, and lists scored but not yet emitted.
            self.batch: dict[str, list[_Request]] = {}
            self.done: dict[str, list[Recommendation]] = {}
            if read_aliases is not None:
                try:
                    versions = read_aliases((CHAMPION, CHALLENGER))
                except Exception as exc:  # the registry being away must not stop the job
                    LOG.error("cannot read the model aliases at start: %s", exc)
                    versions = {}
                self.polled = versions
                for alias, version in versions.items():
                    self.models.want(alias, version)
                self._count(self.models.wait(params.model_load_timeout_s))
                self.poller = AliasPoller(
                    read_aliases, (CHAMPION, CHALLENGER), params.registry_poll_s
                ).start()

        def close(self) -> None:
            if self.poller is not None:
                self.poller.stop()
            self.models.close()

        def process_broadcast_element(self, value: Any, ctx: Any) -> None:
            broadcast = ctx.get_broadcast_state(broadcast_descriptor())
            self._restore(broadcast)
            if isinstance(value, ModelControl):
                self.control[value.alias] = value.version
                broadcast.put("control", self.control)
                self.models.want(value.alias, value.version)
                return
            if value.event_type in (IMPRESSION, CLICK):
                # Item CTR counts for Thompson exploration: shown, and clicked.
                shown, clicked = self.ctr.get(value.item_id, (0, 0))
                if value.event_type == IMPRESSION:
                    shown += 1
                else:
                    clicked += 1
                self.ctr[value.item_id] = (shown, clicked)
                broadcast.put(f"ctr/{value.item_id}", (shown, clicked))
            weight = params.event_weights.get(value.event_type, 0.0)
            if weight <= 0.0:
                return
            context = context_of(value.device, value.event_ts)
            counts = self.trending.setdefault(
                context, DecayedCounts(params.half_life_ms, params.trending_items)
            )
            counts.add(value.item_id, weight, value.event_ts)
            broadcast.put(f"trending/{context}", counts)
            facts = merge_facts(
                self.facts.get(value.item_id, ItemInfo()), value.category_id, value.price
            )
            self.facts[value.item_id] = facts
            broadcast.put(f"facts/{value.item_id}", facts)
            if facts.category is not None:
                popular = self.by_category.setdefault(
                    facts.category, DecayedCounts(params.half_life_ms, params.trending_items)
                )
                popular.add(value.item_id, weight, value.event_ts)
                broadcast.put(f"category/{facts.category}", popular)

        def process_element(self, value: Any, ctx: Any) -> Iterator[ForgetUser]:
            self._restore(ctx.get_broadcast_state(broadcast_descriptor()))
            if isinstance(value, ForgetUser):
                for held in (self.view, self.cf, self.pending):
                    held.clear()
                self.batch.pop(value.user_id, None)
                self.done.pop(value.user_id, None)
                yield value
                return
            if isinstance(value, UserCfScores):
                self.cf.update(value.scores)
                return
            if value.event_type not in TRIGGERS:
                return
            facts = self.facts.get(value.item_id, ItemInfo())
            interaction = Interaction(
                value.item_id,
                value.event_type,
                value.event_ts,
                value.category_id or facts.category,
                value.price if value.price is not None else facts.price,
            )
            view = (self.view.value() or UserView()).observe(
                interaction, params.recent_items, params.purchases_kept
            )
            self.view.update(view)
            request = _Request(
                value.user_id,
                value.event_id,
                value.event_ts,
                context_of(value.device, value.event_ts),
                view,
                self.cf.value() or (),
            )
            self.pending.update([*(self.pending.value() or []), request])
            self.batch.setdefault(value.user_id, []).append(request)
            timers = ctx.timer_service()
            now = timers.current_processing_time()
            timers.register_processing_time_timer(
                (now // params.batch_wait_ms + 1) * params.batch_wait_ms
            )
            # Also when the watermark passes the event: the end of a bounded input (or a drain)
            # fires event-time timers, not processing-time ones. Whichever fires first scores;
            # the other finds nothing pending.
            timers.register_event_time_timer(value.event_ts)

        def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Recommendation]:
            user = ctx.get_current_key()
            pending = self.pending.value() or []
            if not pending:
                return
            done = {r.event_id for r in self.done.get(user, [])}
            if any(r.event_id not in done for r in pending):
                # Held requests are scored together; one restored from a checkpoint (not in
                # this instance's batch) joins them.
                held = {r.event_id for r in self.batch.get(user, [])}
                for request in pending:
                    if request.event_id not in done and request.event_id not in held:
                        self.batch.setdefault(user, []).append(request)
                self._score_batch()
            lists = {r.event_id: r for r in self.done.pop(user, [])}
            self.pending.clear()
            for request in pending:
                self.lists.inc()
                yield lists[request.event_id]

        def _score_batch(self) -> None:
            """Every held request, with one model call per version."""
            self._sync_models()
            requests = [r for user_requests in self.batch.values() for r in user_requests]
            self.batch = {}
            serving: dict[str, tuple[Arm, Any]] = {}  # request event id -> (arm, model)
            by_model: dict[int, list[_Request]] = {}
            models: dict[int, Any] = {}
            for request in requests:
                arm = assign_arm(request.user, params.challenger_share, params.ab_salt)
                loaded = self.models.active(arm) if arm == CHALLENGER_ARM else None
                if loaded is None:
                    arm, loaded = CHAMPION_ARM, self.models.active(CHAMPION)
                serving[request.event_id] = (arm, loaded)
                if loaded is not None:
                    by_model.setdefault(id(loaded), []).append(request)
                    models[id(loaded)] = loaded
            top: dict[str, list[tuple[str, float]]] = {}
            for key, group in by_model.items():
                model = models[key].model
                scores = model.scores([r.view.history() for r in group])
                for request, row in zip(group, scores, strict=True):
                    top[request.event_id] = _top_items(model, row, params.policy.per_source)
            trending_top: dict[str, list[tuple[str, float]]] = {}
            for request in requests:
                served, loaded = serving[request.event_id]
                version = loaded.version if loaded is not None else NO_MODEL
                anchors = request.view.recent[-params.content_anchors :][::-1]
                if request.context not in trending_top:  # once per context and batch
                    counts = self.trending.get(request.context)
                    trending_top[request.context] = (
                        counts.top(params.policy.per_source) if counts else []
                    )
                signals = Signals(
                    cf=request.cf,
                    model=top.get(request.event_id, []),
                    trending=trending_top[request.context],
                    context=request.context,
                    content=content_neighbours(
                        anchors, self.by_category, self.facts, params.content_per_anchor
                    ),
                    ctr_counts=self.ctr,
                )
                self.done.setdefault(request.user, []).append(
                    recommend(
                        request.user,
                        request.event_id,
                        request.event_ts,
                        request.view,
                        signals,
                        self.facts,
                        params.policy,
                        version,
                        served,
                    )
                )

        def _sync_models(self) -> None:
            if self.poller is not None:
                # Only a change in the registry's answer is news: a poll that started before
                # an alias moved must not undo the control record that announced the move.
                latest = self.poller.latest()
                for alias, version in latest.items():
                    if self.polled.get(alias) != version:
                        self.models.want(alias, version)
                self.polled = latest or self.polled
            self._count(self.models.settle())

        def _count(self, swaps: Iterable[Any]) -> None:
            for swap in swaps:
                (self.swaps if swap.ok else self.failures).inc()
                if not swap.ok:
                    LOG.error(
                        "model %s version %s failed to load (%s); serving %s",
                        swap.alias,
                        swap.version,
                        swap.error,
                        swap.previous,
                    )

        def _restore(self, broadcast: Any) -> None:
            """After a restore, rebuild the in-memory mirror from broadcast state once."""
            if self.restored:
                return
            self.restored = True
            for key, value in broadcast.items():
                kind, _, name = key.partition("/")
                if kind == "trending":
                    self.trending[name] = value
                elif kind == "category":
                    self.by_category[name] = value
                elif kind == "facts":
                    self.facts[name] = value
                elif kind == "ctr":
                    self.ctr[name] = value
                elif kind == "control":
                    self.control = dict(value)
                    for alias, version in self.control.items():
                        self.models.want(alias, version)
            # Once, like the start-up load: the first list after a restore is scored by the
            # versions the job served before it, not by the registry's answer at start.
            self._count(self.models.wait(params.model_load_timeout_s))

    broadcast = events.union(control).broadcast(broadcast_descriptor())
    keyed = events.union(cf_scores)
    return (
        (keyed if forgets is None else keyed.union(forgets))
        .key_by(_user_of, key_type=Types.STRING())
        .connect(broadcast)
        .process(Scorer(), pickled)
        .name("scoring")
    )


def _user_of(message: ScoringEvent | UserCfScores | ForgetUser) -> str:
    return message.user_id


def _top_items(model: Any, row: Any, n: int) -> list[tuple[str, float]]:
    """The model's ``n`` best known items of one score row (PAD and UNKNOWN are -inf)."""
    scores = np.asarray(row, dtype=np.float64)
    n = min(n, int(np.isfinite(scores).sum()))
    best = np.argpartition(-scores, n - 1)[:n] if n > 0 else np.array([], dtype=np.int64)
    best = best[np.lexsort((best, -scores[best]))]
    return [(str(model.vocabulary.item(int(i))), float(scores[i])) for i in best]


def read_scoring_events(t_env: Any, raw_events: str) -> Any:
    """The valid events of ``raw_events`` (``rtrec.streaming.kafka.raw_events_ddl``) as a
    DataStream of ScoringEvent stamped with their event time."""
    from rtrec.streaming.online_cf import read_events

    names = (EVENT_ID, USER_ID, ITEM_ID, EVENT_TYPE, EVENT_TS, CATEGORY_ID, PRICE, DEVICE)
    return read_events(t_env, raw_events, names, ScoringEvent)


def recommendation_row(record: Recommendation | ForgetUser) -> Any:
    """The upsert topic's row of a list; a forgotten user's is a delete (a tombstone)."""
    from pyflink.common import Row
    from pyflink.common.types import RowKind

    if isinstance(record, ForgetUser):
        deleted = Row(record.user_id, None, None, None, None, None, None, None)
        deleted.set_row_kind(RowKind.DELETE)
        return deleted

    items = [Row(i.item, i.score, str(i.source), i.reason) for i in record.items]
    return Row(
        record.user,
        record.rec_id,
        record.event_id,
        record.event_ts,
        record.model_version,
        record.arm,
        items,
        int(time.time() * 1000),
    )


RECOMMENDATION_COLUMNS = [
    f"`{USER_ID}` STRING NOT NULL",
    f"`{REC_ID}` STRING",
    f"`{EVENT_ID}` STRING",
    f"`{EVENT_TS}` BIGINT",
    f"`{MODEL_VERSION}` STRING",
    f"`{ARM}` STRING",
    f"`{ITEMS}` ARRAY<ROW<`{ITEM_ID}` STRING, `{SCORE}` DOUBLE, `{SOURCE}` STRING,"
    f" `{REASON}` STRING>>",
    f"`{COMPUTED_AT}` BIGINT",
]


def scoring_job_settings(settings: Settings) -> Settings:
    """``settings`` with the scoring job's own sink guarantee and checkpoint interval in place of
    the ``flink`` section's."""
    scoring = settings.scoring
    flink = settings.flink.model_copy(
        update={
            "delivery_guarantee": scoring.delivery_guarantee,
            "checkpoint_interval_ms": scoring.checkpoint_interval_ms,
        }
    )
    return settings.model_copy(update={"flink": flink})


def run_scoring_job(settings: Settings) -> None:
    """Kafka in (events, CF scores, model control), Kafka out (recommendations, upsert by
    user); the champion comes from the MLflow registry. Runs until cancelled."""
    from pyflink.common import Types

    from rtrec.registry.live import registry_aliases, registry_loader
    from rtrec.streaming.kafka import raw_events_ddl, upsert_ddl
    from rtrec.streaming.online_cf import read_forgets
    from rtrec.streaming.stream_env import create_stream_env

    settings = scoring_job_settings(settings)
    env, t_env = create_stream_env(settings, JOB_NAME, LATENCY_OPTIONS)
    topics, group = settings.kafka.topics, f"{settings.flink.consumer_group}-scoring"
    t_env.execute_sql(raw_events_ddl(settings, "events_raw", group))
    events = read_scoring_events(t_env, "events_raw")
    ranked = f"ARRAY<ROW<`{ITEM_ID}` STRING, `{SCORE}` DOUBLE>>"
    t_env.execute_sql(
        f"""CREATE TEMPORARY TABLE cf_scores_in (`{USER_ID}` STRING NOT NULL,
        `{SCORES}` {ranked}, PRIMARY KEY (`{USER_ID}`) NOT ENFORCED) WITH (
        'connector' = 'upsert-kafka', 'topic' = '{topics.cf_scores}',
        'properties.bootstrap.servers' = '{settings.kafka.bootstrap_servers}',
        'properties.group.id' = '{group}', 'properties.isolation.level' = 'read_committed',
        'key.format' = 'raw', 'value.format' = 'json')"""
    )
    cf_scores = (
        t_env.to_changelog_stream(t_env.from_path("cf_scores_in"))
        .filter(lambda row: row[SCORES] is not None)
        .map(
            lambda row: UserCfScores(row[USER_ID], tuple((r[0], r[1]) for r in row[SCORES])),
            output_type=Types.PICKLED_BYTE_ARRAY(),
        )
    )
    model = settings.mlflow.model_name
    t_env.execute_sql(
        f"""CREATE TEMPORARY TABLE model_control_in (`model` STRING, `alias` STRING,
        `version` STRING, `uri` STRING, `ts` BIGINT) WITH (
        'connector' = 'kafka', 'topic' = '{topics.model_control}',
        'properties.bootstrap.servers' = '{settings.kafka.bootstrap_servers}',
        'properties.group.id' = '{group}', 'scan.startup.mode' = 'latest-offset',
        'format' = 'json', 'json.ignore-parse-errors' = 'true')"""
    )
    control = t_env.to_data_stream(
        t_env.sql_query(
            f"SELECT `alias`, `version` FROM model_control_in WHERE `model` = '{model}'"
        )
    ).map(lambda row: ModelControl(row[0], row[1]), output_type=Types.PICKLED_BYTE_ARRAY())

    recommendations = build_scoring_pipeline(
        events,
        cf_scores,
        control,
        scoring_params(settings),
        registry_loader(settings.mlflow.tracking_uri, model),
        registry_aliases(settings.mlflow.tracking_uri, model),
        forgets=read_forgets(t_env, settings, group),
    )
    item_type = Types.ROW_NAMED(
        [ITEM_ID, SCORE, SOURCE, REASON],
        [Types.STRING(), Types.DOUBLE(), Types.STRING(), Types.STRING()],
    )
    rows = recommendations.map(
        recommendation_row,
        output_type=Types.ROW_NAMED(
            [USER_ID, REC_ID, EVENT_ID, EVENT_TS, MODEL_VERSION, ARM, ITEMS, COMPUTED_AT],
            [
                Types.STRING(),
                Types.STRING(),
                Types.STRING(),
                Types.LONG(),
                Types.STRING(),
                Types.STRING(),
                Types.OBJECT_ARRAY(item_type),
                Types.LONG(),
            ],
        ),
    )
    t_env.execute_sql(
        upsert_ddl(
            settings, "recommendations", topics.recommendations, RECOMMENDATION_COLUMNS, USER_ID
        )
    )
    # Rows are inserts, and deletes of forgotten users: each goes to the upsert topic as it
    # comes (a materializer would keep every user's last list in state to order them).
    t_env.get_config().set("table.exec.sink.upsert-materialize", "NONE")
    statements = t_env.create_statement_set()
    statements.add_insert("recommendations", t_env.from_changelog_stream(rows))
    statements.attach_as_datastream()
    env.execute(JOB_NAME)
