"""Typed settings. Every section rejects unknown keys, so a typo fails at load time."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Topics(Section):
    events: str
    dlq: str
    late_events: str
    user_features: str
    item_features: str
    item_neighbours: str
    cf_scores: str
    recommendations: str
    model_control: str
    ab_metrics: str
    bought_together: str
    forget: str  # privacy: one record per forgotten user, read by every job with per-user state


class KafkaSettings(Section):
    bootstrap_servers: str
    partitions: int = Field(ge=1)
    retention_ms: int = Field(ge=-1)  # -1: keep forever
    topics: Topics


class MlflowSettings(Section):
    tracking_uri: str
    model_name: str


class RedisSettings(Section):
    url: str


class FlinkSettings(Section):
    parallelism: int = Field(ge=1)
    checkpoint_interval_ms: int = Field(ge=100)
    checkpoint_dir: str  # a path or URI (s3://, hdfs://): Flink resolves it
    jars_dir: Path
    watermark_delay_ms: int = Field(ge=0)  # bounded out-of-orderness
    # Extra wait before windows close; events behind the watermark after it are late.
    allowed_lateness_ms: int = Field(ge=0)
    state_ttl_ms: int = Field(ge=1000)
    state_backend: Literal["rocksdb", "hashmap"]
    # Kafka sinks: exactly-once writes in transactions committed with each checkpoint (readers
    # see results one checkpoint interval later); at-least-once writes at once.
    delivery_guarantee: Literal["exactly-once", "at-least-once"]
    transaction_timeout_ms: int = Field(ge=1000)
    # Resume from a checkpoint or savepoint path, or "latest" under checkpoint_dir; "" = fresh.
    restore_from: str
    consumer_group: str
    # The REST address (host:port) of the JobManager `rtrec submit flink` sends jobs to.
    jobmanager: str = "127.0.0.1:8081"
    # Any other Flink configuration key, applied last (e.g. memory of the local mini-cluster).
    conf: dict[str, str] = Field(default_factory=dict)


class SparkSettings(Section):
    app_name: str
    shuffle_partitions: int = Field(ge=1)
    # The --master of `rtrec submit spark` (spark://host:port, k8s://..., yarn, local[n]).
    master: str = "local[2]"
    conf: dict[str, str] = Field(default_factory=dict)


class LakeSettings(Section):
    # Paths or URIs (s3a://, abfss://): Spark resolves them, so they stay strings.
    root: str
    checkpoint_root: str
    trigger_interval_s: int = Field(ge=1)
    # continuous: micro-batches every trigger_interval_s, forever; available_now: catch up, stop.
    ingest_trigger: Literal["continuous", "available_now"]
    # VACUUM (erase_user) deletes files that newer versions removed more than this long ago.
    # Until then they serve time travel, readers in flight and writers not yet committed; an
    # erased user's rows are physically gone one window after the erasure.
    vacuum_retention_hours: int = Field(ge=0)

    def table_path(self, layer: str, table: str) -> str:
        """Where `<layer>.<table>` lives, e.g. ``table_path("bronze", "events")``."""
        return f"{self.root.rstrip('/')}/{layer}/{table}"

    def checkpoint_path(self, job: str) -> str:
        return f"{self.checkpoint_root.rstrip('/')}/{job}"


class ProducerSettings(Section):
    batch_size: int = Field(ge=1)
    linger_ms: int = Field(ge=0)
    progress_every: int = Field(ge=1)


class SimulatorSettings(Section):
    seed: int
    users: int = Field(ge=1)
    items: int = Field(ge=2)
    categories: int = Field(ge=1)
    events: int = Field(ge=0)
    start_ts_ms: int = Field(ge=0)
    malformed_share: float = Field(ge=0.0, le=1.0)
    duplicate_share: float = Field(ge=0.0, le=1.0)


class CfSettings(Section):
    """Online item-item CF (docs/online_cf.md); the field names are rtrec.cf.CfParams's."""

    weights: dict[str, float]
    history_size: int = Field(ge=1)
    history_ttl_ms: int = Field(ge=1)
    decay_ms: int = Field(ge=1)
    dedup_size: int = Field(ge=1)
    max_partners: int = Field(ge=1)
    neighbours: int = Field(ge=1)
    candidates: int = Field(ge=1)
    # Event-time period of the coalesced norm and ranking fan-outs.
    flush_interval_ms: int = Field(ge=1)
    # Wall-clock bound on a pending fan-out: event time stops when the input goes quiet.
    idle_flush_ms: int = Field(ge=1)
    # A safety net well above history_ttl_ms: a user's state outlives their history.
    state_ttl_ms: int = Field(ge=1)


class TrainingSettings(Section):
    """Training data (docs/training.md): the time-based split and the history kept per example."""

    test_share: float = Field(gt=0.0, lt=1.0)  # the latest steps held out for evaluation
    max_history: int = Field(ge=1)  # items of history per training example (the model's max_len)
    backend: Literal["torch_distributor", "horovod", "local"]  # who runs the training function
    processes: int = Field(ge=1)  # ranks of a distributed backend
    use_gpu: bool  # NCCL on the executors' GPUs (TorchDistributor); gloo on CPU otherwise
    epochs: int = Field(ge=1)
    force: bool  # register as challenger even if the champion is better (the gate is skipped)


class ExplorationSettings(Section):
    mode: Literal["off", "epsilon", "thompson"]
    epsilon: float = Field(ge=0.0, le=1.0)  # the share of lists whose last slot explores


class AbSettings(Section):
    challenger_share: float = Field(ge=0.0, le=1.0)  # users scored by the challenger
    salt: str = Field(min_length=1)  # a new salt is a new, independent split of users
    metrics_window_ms: int = Field(ge=1000)  # event-time windows of the online A/B metrics


class ColdStartSettings(Section):
    max_history: int = Field(ge=0)  # a user with at most this many items is new
    trending_weight: float = Field(ge=0.0)  # the weight of trending-in-context for them


class ScoringSettings(Section):
    """The Flink scoring job (docs/scoring.md)."""

    k: int = Field(ge=1)  # items per list
    per_source: int = Field(ge=1)  # candidates taken from each source
    # Fusion weights of the sources' min-max normalised scores (rtrec.scoring.fusion).
    weights: dict[Literal["recent", "cf", "model", "trending", "content"], float]
    rebuyable_categories: list[str]  # purchases in these may be recommended again
    max_per_category: int = Field(ge=1)
    min_price: float | None = None
    max_price: float | None = None
    exploration: ExplorationSettings
    cold_start: ColdStartSettings
    ab: AbSettings
    recent_items: int = Field(ge=1)  # the user's items kept (and fed to the deep model)
    purchases_kept: int = Field(ge=1)
    trending_half_life_ms: int = Field(ge=1)  # event time
    trending_items: int = Field(ge=1)  # kept per context and per category
    content_per_anchor: int = Field(ge=1)
    content_anchors: int = Field(ge=1)  # the user's latest items that content neighbours follow
    # Requests wait at most this long so the deep model scores many users in one call.
    batch_wait_ms: int = Field(ge=1)
    registry_poll_s: float = Field(gt=0)  # the safety net for a missed model_control record
    model_load_timeout_s: float = Field(gt=0)  # at start, how long to wait for the champion
    # The job's own sink guarantee and checkpoint interval, in place of flink.*: see
    # docs/scoring.md ("Freshness").
    delivery_guarantee: Literal["exactly-once", "at-least-once"]
    checkpoint_interval_ms: int = Field(ge=100)


class ApiKeySettings(Section):
    scopes: list[Literal["read", "write"]]
    # The key itself: from the environment variable ``env`` when it is set, else ``key``
    # (for local development only: secrets belong in the environment). Neither: disabled.
    env: str
    key: str = ""


class ServingSettings(Section):
    """The HTTP API (docs/serving.md)."""

    host: str
    port: int = Field(ge=0, le=65535)
    default_k: int = Field(ge=1)
    max_k: int = Field(ge=1)
    max_events_per_request: int = Field(ge=1)
    api_keys: dict[str, ApiKeySettings]


class PrivacySettings(Section):
    """Pseudonymisation of user ids at ingestion (docs/privacy.md)."""

    pseudonymise: bool
    # The HMAC key: from the environment variable named here, else from the file key_file
    # (a mounted secret); "" or null = no file. Neither, with pseudonymise on, is an error at
    # use (an unset ${VAR:-} placeholder loads as null).
    key_env: str
    key_file: str | None = None


class KafkaServiceSettings(Section):
    host: str
    port: int = Field(ge=1, le=65535)
    controller_port: int = Field(ge=1, le=65535)
    heap: str


class EndpointSettings(Section):
    host: str
    port: int = Field(ge=1, le=65535)


class LocalServicesSettings(Section):
    """The services `rtrec local up` starts on this machine (absent on clusters)."""

    run_dir: Path
    startup_timeout_s: float = Field(gt=0)
    kafka: KafkaServiceSettings
    mlflow: EndpointSettings
    redis: EndpointSettings


class Settings(Section):
    env: str
    root: Path
    kafka: KafkaSettings
    mlflow: MlflowSettings
    redis: RedisSettings
    flink: FlinkSettings
    spark: SparkSettings
    lake: LakeSettings
    producer: ProducerSettings
    simulator: SimulatorSettings
    cf: CfSettings
    training: TrainingSettings
    scoring: ScoringSettings
    serving: ServingSettings
    privacy: PrivacySettings
    local_services: LocalServicesSettings | None = None
