"""The project's Kafka topics, created explicitly (the local broker never auto-creates)."""

from __future__ import annotations

import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

# NewTopic is defined in the C extension; confluent_kafka.admin re-exports it untyped.
from confluent_kafka.cimpl import NewTopic

from rtrec.config import Settings
from rtrec.errors import RtrecError
from rtrec.local.services import QUIET_CLIENT

# Fields of settings.kafka.topics whose records are upserts keyed by entity id (or, for
# model_control, the latest alias move per model; for forget, the latest request per user):
# compaction keeps the last value per key.
COMPACTED = frozenset(
    {
        "user_features",
        "item_features",
        "item_neighbours",
        "cf_scores",
        "recommendations",
        "model_control",
        "ab_metrics",
        "bought_together",
        # The latest forget record per user stays for good, so a job that re-reads the events
        # from the start still honours it (docs/privacy.md).
        "forget",
    }
)


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Every configured topic name with its topic-level config overrides."""
    topics = settings.kafka.topics
    # Record timestamps are event times, so time-based retention is configured explicitly:
    # the broker default (7 days) would delete a replay of older history almost at once.
    retained = {"retention.ms": str(settings.kafka.retention_ms)}
    return {
        getattr(topics, field): {"cleanup.policy": "compact"} if field in COMPACTED else retained
        for field in type(topics).model_fields
    }


def ensure_topics(
    settings: Settings,
    bootstrap_servers: str | None = None,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the configured topics that do not exist yet; returns the names created.

    Partitions come from ``settings.kafka.partitions``; existing topics are left as they are.
    The broker is ``settings.kafka.bootstrap_servers`` unless ``bootstrap_servers`` is given.
    """
    servers = bootstrap_servers or settings.kafka.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": servers, **QUIET_CLIENT})
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise RtrecError(f"kafka at {servers}: cannot list topics: {exc.args[0]}") from None
    missing = [
        NewTopic(
            name,
            num_partitions=settings.kafka.partitions,
            replication_factor=replication_factor,
            config=config,
        )
        for name, config in topic_configs(settings).items()
        if name not in existing
    ]
    if not missing:
        return []
    futures = admin.create_topics(missing, operation_timeout=timeout_s, request_timeout=timeout_s)
    created = []
    for name, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            # Someone else (another `up`, a test) created it in the meantime: that is fine.
            if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise RtrecError(
                f"kafka at {servers}: cannot create topic {name}: {error.str()}"
            ) from None
        created.append(name)
    # Creation is acknowledged by the controller before every broker's metadata shows the
    # topic; a client that looks right away could still be told it does not exist.
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        visible = admin.list_topics(timeout=timeout_s).topics
        if all(name in visible and not visible[name].error for name in created):
            break
        time.sleep(0.1)
    return sorted(created)
