"""The live dashboard: a static page (``rtrec/serving/static``) and the JSON it polls.

- ``GET /dashboard``: the page (public: it holds no data; it asks for a key).
- ``GET /v1/dashboard/stream``: events on the events topic and their rate, dead letters, late
  events, each Flink job's consumer lag, and freshness of the scoring job's latest lists.
- ``GET /v1/dashboard/models``: the registry's versions with their aliases, and the online A/B
  metrics of each version and arm.
- ``GET /v1/dashboard/users/{id}`` and ``/items/{id}``: what the online store holds for one
  user (features, recent items, live recommendations with reasons) or item (neighbours, bought
  together, window features).

The data routes need the read scope, as ``/v1`` does. Kafka and MLflow calls block, so they run
in worker threads, one at a time, and their answers are cached: any number of open pages costs
at most one Kafka round per ``STREAM_TTL_S`` and one registry listing per ``MODELS_TTL_S``,
and the event loop serving ``/v1`` never waits on them.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

# FastAPI reads the routes' annotations from this module's globals: these are imported here.
from fastapi import FastAPI, Path, Request, Response
from fastapi.responses import JSONResponse

from rtrec.config import Settings
from rtrec.errors import RtrecError
from rtrec.features.definitions import (
    ITEM_WINDOWS,
    RECENT_CATEGORIES_GROUP,
    RECENT_GROUPS,
    RECENT_ITEMS_GROUP,
    SESSION_GROUP,
    TOTALS_GROUP,
    USER_WINDOWS,
    WINDOW_END,
    WINDOW_START,
)
from rtrec.schema.events import EVENT_TS
from rtrec.scoring.ab import ARM, CHALLENGER_ARM, CHAMPION_ARM, CLICKS, IMPRESSIONS
from rtrec.serving.online_store import (
    BOUGHT_TOGETHER_GROUP,
    CF_GROUP,
    NEIGHBOURS_GROUP,
    PREFIX,
    RECOMMENDATIONS_GROUP,
    store_key,
    writers,
)

STREAM_TTL_S = 1.0
MODELS_TTL_S = 5.0
RATE_WINDOW_S = 10.0  # the event rate is averaged over about this much wall time
LISTS_PER_PARTITION = 100  # freshness is measured on the latest lists of each partition
KAFKA_TIMEOUT_S = 5.0
COUNT_BUDGET_S = 0.5  # reading time per refresh for the record counts; the rest waits a refresh
COMPUTED_AT = "computed_at"  # the scoring job's wall-clock stamp on a list (streaming.scoring)
PURCHASES = "purchases"
STATIC = {  # file -> media type; only these are served
    "dashboard.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}

TopicPartition = tuple[str, int]
Offsets = dict[TopicPartition, int]


def job_groups(settings: Settings) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Job -> (consumer group, topics whose lag it owns). The Flink jobs commit their Kafka
    offsets when a checkpoint completes; the group ids are the ones their sources are given."""
    group, topics = settings.flink.consumer_group, settings.kafka.topics
    return {
        "behaviour features": (f"{group}-features", (topics.events,)),
        "online CF": (f"{group}-cf", (topics.events,)),
        "scoring": (f"{group}-scoring", (topics.events,)),
        "online-store sync": (f"{group}-online-store", tuple(sorted(writers(settings)))),
    }


def topic_total(ends: Offsets, topic: str) -> int:
    """The sum of a topic's end offsets: every record ever written to it, for a topic written
    without transactions (the events topic)."""
    return sum(offset for (name, _), offset in ends.items() if name == topic)


def lag(committed: Offsets, ends: Offsets, topics: Iterable[str]) -> int | None:
    """Records on ``topics`` the group has not committed past; None when it has committed
    nothing on them (not started, or no checkpoint yet). A partition without a commit counts in
    full: a group starting there reads it from the beginning."""
    wanted = set(topics)
    if not any(tp[0] in wanted for tp in committed):
        return None
    return sum(max(0, end - committed.get(tp, 0)) for tp, end in ends.items() if tp[0] in wanted)


def rate(samples: Sequence[tuple[float, int]]) -> float | None:
    """Per second, from the oldest to the newest (time, total) sample; None until two samples
    lie apart in time."""
    if len(samples) < 2 or samples[-1][0] <= samples[0][0]:
        return None
    (t0, n0), (t1, n1) = samples[0], samples[-1]
    return max(0.0, (n1 - n0) / (t1 - t0))


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of sorted ``values`` (non-empty)."""
    rank = max(1, min(len(values), math.ceil(share * len(values))))
    return values[rank - 1]


def freshness(records: Iterable[Mapping[str, Any]], now_ms: int) -> dict[str, Any]:
    """How long after its triggering event each list was computed (``computed_at`` minus the
    event's ``event_ts``), over ``records``; and how long ago the newest list was computed."""
    delays, newest = [], None
    for record in records:
        computed, event_ts = record.get(COMPUTED_AT), record.get(EVENT_TS)
        if not isinstance(computed, int) or not isinstance(event_ts, int):
            continue
        delays.append(float(computed - event_ts))
        newest = computed if newest is None else max(newest, computed)
    delays.sort()
    if not delays:
        return {"lists": 0, "p50_ms": None, "p95_ms": None, "max_ms": None, "newest_age_ms": None}
    return {
        "lists": len(delays),
        "p50_ms": percentile(delays, 0.50),
        "p95_ms": percentile(delays, 0.95),
        "max_ms": delays[-1],
        "newest_age_ms": None if newest is None else now_ms - newest,
    }


def ab_rows(series: Mapping[tuple[str, str], Mapping[str, str]]) -> list[dict[str, Any]]:
    """One row per (model version, arm) with metrics: totals over its windows and the latest
    window's CTR. ``series`` maps (version, arm) to the Redis hash ``ab_write`` keeps (window
    start -> the window's record as JSON)."""
    rows = []
    for (version, arm), windows in sorted(series.items()):
        if not windows:
            continue
        records = [json.loads(windows[start]) for start in sorted(windows, key=int)]
        impressions = sum(int(r.get(IMPRESSIONS) or 0) for r in records)
        clicks = sum(int(r.get(CLICKS) or 0) for r in records)
        purchases = sum(int(r.get(PURCHASES) or 0) for r in records)
        last = records[-1]
        rows.append(
            {
                "model_version": version,
                ARM: arm,
                "windows": len(records),
                IMPRESSIONS: impressions,
                CLICKS: clicks,
                PURCHASES: purchases,
                "ctr": clicks / impressions if impressions else None,
                "conversion": purchases / impressions if impressions else None,
                "last_window_start": last.get(WINDOW_START),
                "last_window_ctr": last.get("ctr"),
            }
        )
    return rows


def feature_hash(raw: Mapping[bytes, bytes]) -> dict[str, float]:
    """A feature hash as the sync wrote it (numbers as text) back to numbers."""
    return {key.decode(): float(value) for key, value in raw.items()}


def recent(features: Mapping[str, float]) -> list[dict[str, Any]]:
    """A recent-items or recent-categories hash (id -> epoch ms last touched, plus the window
    bounds) as a list, newest first."""
    touched = [(k, v) for k, v in features.items() if k not in (WINDOW_START, WINDOW_END)]
    touched.sort(key=lambda kv: (-kv[1], kv[0]))
    return [{"id": k, "ts": int(v)} for k, v in touched]


USER_GROUPS = (
    TOTALS_GROUP,
    SESSION_GROUP,
    *(w.group for w in USER_WINDOWS),
    *RECENT_GROUPS,
)
ITEM_GROUPS = tuple(w.group for w in ITEM_WINDOWS)


@dataclass
class Snapshot:
    """One read of Kafka's offsets, and what was derived from it."""

    at: float  # time.monotonic()
    ends: Offsets
    committed: dict[str, Offsets]  # group -> its committed offsets
    lists: list[dict[str, Any]] = field(default_factory=list)  # latest recommendation records
    counts: dict[str, int] = field(default_factory=dict)  # topic -> committed records read


class KafkaWatch:
    """Kafka clients for the app's lifetime, created on first use: an admin client (end
    offsets), a consumer reading the latest recommendation records, and one consumer per job
    group asking for its committed offsets. Blocking: call from a worker thread.

    Committed offsets come from ``Consumer.committed`` rather than the admin client's
    ``list_consumer_group_offsets``: confluent-kafka 2.16.1 crashed the process (SIGSEGV) when
    the broker answered that with "coordinator load in progress", as a fresh broker does. A
    consumer that never subscribes does not join its group, so asking as the job's group does
    not disturb the job."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._admin: Any = None
        self._consumer: Any = None
        self._group_consumers: dict[str, Any] = {}
        self._partitions: dict[str, list[int]] = {}
        self._counter: Any = None
        self._counted: dict[TopicPartition, int] = {}

    def _reader(self, group: str, eof: bool = False) -> Any:
        from confluent_kafka import Consumer

        return Consumer(
            {
                "bootstrap.servers": self.settings.kafka.bootstrap_servers,
                "group.id": group,
                # Never subscribes or commits: it reads assigned partitions or asks for offsets.
                "enable.auto.commit": False,
                "enable.partition.eof": eof,
            }
        )

    def committed(self, group: str, tps: Sequence[TopicPartition]) -> Offsets:
        """The group's committed offsets on ``tps`` (partitions without one left out)."""
        from confluent_kafka import TopicPartition as Partition

        if group not in self._group_consumers:
            self._group_consumers[group] = self._reader(group)
        if not tps:
            return {}
        answer = self._group_consumers[group].committed(
            [Partition(t, p) for t, p in tps], timeout=KAFKA_TIMEOUT_S
        )
        return {
            (tp.topic, tp.partition): tp.offset
            for tp in answer
            if tp.error is None and tp.offset >= 0  # negative: no commit on that partition
        }

    def _clients(self) -> tuple[Any, Any]:
        if self._admin is None:
            from confluent_kafka.admin import AdminClient

            bootstrap = self.settings.kafka.bootstrap_servers
            self._admin = AdminClient({"bootstrap.servers": bootstrap})
            self._consumer = self._reader(
                f"{self.settings.flink.consumer_group}-dashboard", eof=True
            )
        return self._admin, self._consumer

    def partitions(self, topics: Iterable[str]) -> list[TopicPartition]:
        admin, _ = self._clients()
        missing = [t for t in topics if t not in self._partitions]
        if missing:
            metadata = admin.list_topics(timeout=KAFKA_TIMEOUT_S).topics
            for topic in missing:
                known = metadata.get(topic)
                if known is not None and known.error is None:
                    self._partitions[topic] = sorted(known.partitions)
        return [(t, p) for t in topics for p in self._partitions.get(t, [])]

    def snapshot(self) -> Snapshot:
        from confluent_kafka import IsolationLevel, KafkaException
        from confluent_kafka import TopicPartition as Partition
        from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

        topics = self.settings.kafka.topics
        groups = job_groups(self.settings)
        watched = {topics.events, topics.dlq, topics.late_events, topics.recommendations}
        for _, group_topics in groups.values():
            watched.update(group_topics)
        try:
            admin, _ = self._clients()
            tps = self.partitions(sorted(watched))
            if not tps:
                raise RtrecError(
                    f"none of the topics {sorted(watched)} exists at "
                    f"{self.settings.kafka.bootstrap_servers}"
                )
            futures = admin.list_offsets(
                {Partition(t, p): OffsetSpec.latest() for t, p in tps},  # type: ignore[no-untyped-call]
                # What read_committed readers can reach: the jobs' transactions once committed.
                isolation_level=IsolationLevel.READ_COMMITTED,
                request_timeout=KAFKA_TIMEOUT_S,
            )
            ends = {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}
            committed = {
                group: self.committed(group, [tp for tp in tps if tp[0] in group_topics])
                for group, group_topics in groups.values()
            }
            lists = self.latest_lists(ends)
            counts = self.count_records((topics.dlq, topics.late_events), ends)
        except KafkaException as exc:
            raise RtrecError(
                f"kafka at {self.settings.kafka.bootstrap_servers}: {exc.args[0]}"
            ) from None
        return Snapshot(time.monotonic(), ends, committed, lists, counts)

    def count_records(self, topics: Sequence[str], ends: Offsets) -> dict[str, int]:
        """The committed records on ``topics``, counted by reading them: the Flink jobs write
        the dead letters and late events in transactions, and each commit adds a marker that
        end offsets count too. Incremental: a refresh reads what arrived since the last one,
        for at most ``COUNT_BUDGET_S`` (a first read of a long history spans refreshes)."""
        from confluent_kafka import OFFSET_BEGINNING
        from confluent_kafka import TopicPartition as Partition

        if self._counter is None:
            self._counter = self._reader(f"{self.settings.flink.consumer_group}-dashboard-count")
        wanted = {tp: end for tp, end in ends.items() if tp[0] in topics}
        new = [tp for tp in wanted if tp not in self._counted]
        if new:
            self._counter.incremental_assign([Partition(t, p, OFFSET_BEGINNING) for t, p in new])
            self._counted.update(dict.fromkeys(new, 0))

        def behind() -> bool:
            positions = self._counter.position([Partition(t, p) for t, p in wanted])
            # The position passes the commit markers too, so it reaches the end offset.
            return any(tp.offset < wanted[(tp.topic, tp.partition)] for tp in positions)

        deadline = time.monotonic() + COUNT_BUDGET_S
        while time.monotonic() < deadline and behind():
            for message in self._counter.consume(1000, timeout=0.1):
                tp = (message.topic(), message.partition())
                if message.error() is None and tp in self._counted:
                    self._counted[tp] += 1
        totals = dict.fromkeys(topics, 0)
        for (topic, _), count in self._counted.items():
            totals[topic] += count
        return totals

    def latest_lists(self, ends: Offsets) -> list[dict[str, Any]]:
        """The last ``LISTS_PER_PARTITION`` recommendation records of each partition: bounded
        work per refresh however fast the scoring job writes."""
        from confluent_kafka import KafkaError
        from confluent_kafka import TopicPartition as Partition

        _, consumer = self._clients()
        topic = self.settings.kafka.topics.recommendations
        wanted = {tp: end for tp, end in ends.items() if tp[0] == topic and end > 0}
        if not wanted:
            return []
        consumer.assign(
            [Partition(t, p, max(0, end - LISTS_PER_PARTITION)) for (t, p), end in wanted.items()]
        )
        records, open_ = [], set(wanted)
        deadline = time.monotonic() + KAFKA_TIMEOUT_S
        try:
            while open_ and time.monotonic() < deadline:
                for message in consumer.consume(500, timeout=0.2):
                    tp = (message.topic(), message.partition())
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            open_.discard(tp)
                        continue
                    if message.offset() >= wanted.get(tp, 0) - 1:
                        open_.discard(tp)
                    value = message.value()
                    if value is not None:  # a tombstone: a forgotten user's list
                        try:
                            records.append(json.loads(value))
                        except ValueError:
                            continue  # not a list record; freshness measures the others
        finally:
            consumer.unassign()
        return records

    def close(self) -> None:
        for consumer in [self._consumer, self._counter, *self._group_consumers.values()]:
            if consumer is not None:
                consumer.close()


class Cached:
    """The latest answer of a blocking function, refreshed in a worker thread at most once per
    ``ttl_s``; concurrent callers share one refresh."""

    def __init__(self, fetch: Callable[[], Any], ttl_s: float) -> None:
        self.fetch = fetch
        self.ttl_s = ttl_s
        self.value: Any = None
        self.at = float("-inf")
        self.lock = asyncio.Lock()

    async def get(self) -> Any:
        if time.monotonic() - self.at < self.ttl_s:
            return self.value
        async with self.lock:
            if time.monotonic() - self.at >= self.ttl_s:
                self.value = await asyncio.to_thread(self.fetch)
                self.at = time.monotonic()
        return self.value


class Dashboard:
    """The numbers behind the page, from Kafka, the registry and the online store."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kafka = KafkaWatch(settings)
        self.samples: deque[tuple[float, int]] = deque()
        self._stream = Cached(self._read_stream, STREAM_TTL_S)
        self._versions = Cached(self._read_versions, MODELS_TTL_S)

    def _read_stream(self) -> dict[str, Any]:
        topics = self.settings.kafka.topics
        try:
            snap = self.kafka.snapshot()
        except RtrecError as exc:
            return {"error": str(exc)}
        events = topic_total(snap.ends, topics.events)
        self.samples.append((snap.at, events))
        while len(self.samples) > 2 and snap.at - self.samples[1][0] >= RATE_WINDOW_S:
            self.samples.popleft()
        lags = []
        for job, (group, job_topics) in job_groups(self.settings).items():
            behind = lag(snap.committed.get(group, {}), snap.ends, job_topics)
            lags.append({"job": job, "group": group, "topics": list(job_topics), "lag": behind})
        return {
            "events": events,
            "events_per_s": rate(self.samples),
            "dead_letters": snap.counts.get(topics.dlq, 0),
            "late_events": snap.counts.get(topics.late_events, 0),
            "lag": lags,
            "freshness": freshness(snap.lists, int(time.time() * 1000)),
            "topics": {"events": topics.events, "dlq": topics.dlq},
        }

    def _read_versions(self) -> dict[str, Any]:
        from rtrec.registry.promotion import list_versions

        try:
            rows = list_versions(self.settings)
        except Exception as exc:  # the panel says the registry is unreachable; the page lives
            return {"error": f"registry at {self.settings.mlflow.tracking_uri}: {exc}"}
        return {
            "model": self.settings.mlflow.model_name,
            "versions": [
                {
                    "version": r.version,
                    "aliases": list(r.aliases),
                    "created_ms": r.created_ms,
                    "run_id": r.run_id,
                    "metric": r.metric,
                }
                for r in rows
            ],
        }

    async def stream(self) -> dict[str, Any]:
        answer: dict[str, Any] = await self._stream.get()
        return answer

    async def models(self, redis: Any) -> dict[str, Any]:
        registry: dict[str, Any] = await self._versions.get()
        versions = [v["version"] for v in registry.get("versions", [])]
        pairs: list[tuple[str, str]] = [
            (v, arm) for v in versions for arm in (CHAMPION_ARM, CHALLENGER_ARM)
        ]
        pipe = redis.pipeline(transaction=False)
        for version, arm in pairs:
            pipe.hgetall(f"{PREFIX}:ab:{version}:{arm}")
        hashes = await pipe.execute() if pairs else []
        series = {
            pair: {k.decode(): v.decode() for k, v in raw.items()}
            for pair, raw in zip(pairs, hashes, strict=True)
        }
        return {**registry, "ab": ab_rows(series)}

    async def user(self, redis: Any, user_id: str, stored_as: str) -> dict[str, Any]:
        pipe = redis.pipeline(transaction=False)
        for group in USER_GROUPS:
            pipe.hgetall(store_key("user", stored_as, group))
        pipe.get(store_key("user", stored_as, CF_GROUP))
        pipe.get(store_key("user", stored_as, RECOMMENDATIONS_GROUP))
        *hashes, cf, recommendations = await pipe.execute()
        features = {
            group: feature_hash(raw) for group, raw in zip(USER_GROUPS, hashes, strict=True)
        }
        return {
            "user_id": user_id,
            "stored_as": stored_as,
            "recommendations": None if recommendations is None else json.loads(recommendations),
            "recent_items": recent(features.pop(RECENT_ITEMS_GROUP)),
            "recent_categories": recent(features.pop(RECENT_CATEGORIES_GROUP)),
            "features": {group: values for group, values in features.items() if values},
            "cf": [] if cf is None else json.loads(cf),
        }

    async def item(self, redis: Any, item_id: str) -> dict[str, Any]:
        pipe = redis.pipeline(transaction=False)
        pipe.get(store_key("item", item_id, NEIGHBOURS_GROUP))
        pipe.get(store_key("item", item_id, BOUGHT_TOGETHER_GROUP))
        for group in ITEM_GROUPS:
            pipe.hgetall(store_key("item", item_id, group))
        neighbours, together, *hashes = await pipe.execute()
        features = {
            group: feature_hash(raw) for group, raw in zip(ITEM_GROUPS, hashes, strict=True)
        }
        return {
            "item_id": item_id,
            "neighbours": [] if neighbours is None else json.loads(neighbours),
            "bought_together": [] if together is None else json.loads(together),
            "features": {group: values for group, values in features.items() if values},
        }

    def close(self) -> None:
        self.kafka.close()


def static_file(name: str) -> bytes:
    """A file of the page, from the installed package."""
    return resources.files("rtrec.serving").joinpath("static", name).read_bytes()


def mount_dashboard(
    app: FastAPI,
    settings: Settings,
    redis: Callable[[], Any],
    authorise: Callable[[Request, Any], None],
    user_key: Callable[[str], str] | None = None,
) -> Dashboard:
    """Add the page and its data routes to ``app``. ``redis`` returns the app's client (made at
    start-up), ``authorise(request, "read")`` is the API's own key check, and ``user_key`` maps
    a raw user id to the id the store holds, as ``/v1/users/{id}/recommendations`` does."""
    dashboard = Dashboard(settings)
    files = {name: static_file(name) for name in STATIC}
    secured: dict[str, Any] = {
        "openapi_extra": {"security": [{"ApiKey": []}]},
        "tags": ["dashboard"],
    }

    @app.get("/dashboard", include_in_schema=False)
    async def page() -> Response:
        return Response(files["dashboard.html"], media_type=STATIC["dashboard.html"])

    @app.get("/dashboard/static/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name not in files:
            return Response(b"not found", status_code=404, media_type="text/plain")
        return Response(files[name], media_type=STATIC[name])

    @app.get("/v1/dashboard/stream", **secured)
    async def stream(request: Request) -> Any:
        authorise(request, "read")
        return JSONResponse(await dashboard.stream())

    @app.get("/v1/dashboard/models", **secured)
    async def models(request: Request) -> Any:
        authorise(request, "read")
        return JSONResponse(await dashboard.models(redis()))

    @app.get("/v1/dashboard/users/{user_id}", **secured)
    async def user(request: Request, user_id: str = Path(min_length=1, max_length=256)) -> Any:
        authorise(request, "read")
        stored_as = user_id if user_key is None else user_key(user_id)
        return JSONResponse(await dashboard.user(redis(), user_id, stored_as))

    @app.get("/v1/dashboard/items/{item_id}", **secured)
    async def item(request: Request, item_id: str = Path(min_length=1, max_length=256)) -> Any:
        authorise(request, "read")
        return JSONResponse(await dashboard.item(redis(), item_id))

    return dashboard
