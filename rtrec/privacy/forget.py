"""Forgetting a user everywhere the platform keeps them (docs/privacy.md, "Forget").

``forget_user`` takes the raw id, works only with its pseudonym, and in this order:

1. **Flink state.** A forget record on ``kafka.topics.forget``, keyed by the pseudonym. Every
   job with per-user state reads that topic beside the events, drops the user's state and
   sends deletes (tombstones) for the user's records on its upsert topics, which the
   online-store sync turns into Redis deletes. The record carries the end offset of each
   partition of the events topic at the request, so "the events before the request" means the
   same thing to every job and on every replay. It goes first so the jobs stop adding to the
   user's state while the lake is erased.
2. **Redis.** Every ``rtrec:user:<pseudonym>:*`` key, deleted at once rather than left to the
   tombstones, so the API stops answering for the user within the second. The jobs'
   tombstones then find nothing left; whatever they carry is a delete anyway.
3. **Delta.** The Spark job ``jobs/spark/erase_user.py`` with the pseudonym (docs/erasure.md).
4. **Audit.** One row appended to the Delta table ``audit.erasures`` (``AUDIT_TABLE``): the
   pseudonym, never the raw id, when, by whom and where, and what each store lost.
"""

from __future__ import annotations

import getpass
import json
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtrec.config import Settings
from rtrec.errors import RtrecError
from rtrec.privacy import pseudonymiser
from rtrec.schema.events import USER_ID

AUDIT_TABLE = ("audit", "erasures")
REQUESTED_AT = "requested_at"
OFFSETS = "offsets"  # events-topic partition (as a string, JSON keys are) -> end offset
METADATA_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ForgetRecord:
    """Where the forget request landed on ``kafka.topics.forget``."""

    topic: str
    partition: int
    offset: int
    event_offsets: dict[str, int]  # the events topic's end offsets the request covers


@dataclass
class Forgotten:
    """What ``forget_user`` removed; the audit row is made from it."""

    pseudonym: str
    requested_at: int  # epoch ms
    requested_by: str
    host: str
    forget: ForgetRecord | None = None
    delta: list[dict[str, Any]] = field(default_factory=list)  # erase job report, per table
    redis_keys: list[str] = field(default_factory=list)
    completed_at: int = 0

    @property
    def delta_rows(self) -> int:
        return sum(int(table["rows_deleted"]) for table in self.delta)


def forget_record(pseudonym: str, requested_at: int, offsets: dict[str, int]) -> bytes:
    """The value of a forget record (its key is the pseudonym)."""
    return json.dumps(
        {USER_ID: pseudonym, REQUESTED_AT: requested_at, OFFSETS: offsets},
        separators=(",", ":"),
    ).encode()


def publish_forget(settings: Settings, pseudonym: str, requested_at: int) -> ForgetRecord:
    """Send the forget record, stamped with the events topic's end offsets, and wait for it."""
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

    kafka = settings.kafka
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": "rtrec-privacy",
            "enable.auto.commit": False,
        }
    )
    try:
        topics = consumer.list_topics(timeout=METADATA_TIMEOUT_S).topics
        for topic in (kafka.topics.events, kafka.topics.forget):
            if topic not in topics:
                raise RtrecError(
                    f"topic {topic} does not exist at {kafka.bootstrap_servers}; "
                    "create the topics first (rtrec local up)"
                )
        offsets = {
            str(p): int(
                consumer.get_watermark_offsets(
                    TopicPartition(kafka.topics.events, p), timeout=METADATA_TIMEOUT_S
                )[1]
            )
            for p in sorted(topics[kafka.topics.events].partitions)
        }
    except KafkaException as exc:
        raise RtrecError(f"kafka at {kafka.bootstrap_servers}: {exc.args[0].str()}") from None
    finally:
        consumer.close()
    producer = Producer(
        {"bootstrap.servers": kafka.bootstrap_servers, "enable.idempotence": True, "acks": "all"}
    )
    landed: list[Any] = []
    producer.produce(
        kafka.topics.forget,
        forget_record(pseudonym, requested_at, offsets),
        pseudonym.encode(),
        on_delivery=lambda error, message: landed.append((error, message)),
    )
    producer.flush(30.0)
    producer.close()
    if not landed or landed[0][0] is not None:
        detail = landed[0][0].str() if landed else "not acknowledged within 30 s"
        raise RtrecError(f"the forget record was not delivered to {kafka.topics.forget}: {detail}")
    message = landed[0][1]
    return ForgetRecord(kafka.topics.forget, message.partition(), message.offset(), offsets)


def delete_redis_keys(settings: Settings, pseudonym: str) -> list[str]:
    """Delete every online-store key of the user; returns the keys deleted."""
    import redis

    from rtrec.serving.online_store import PREFIX

    client = redis.Redis.from_url(settings.redis.url)
    try:
        pattern = f"{PREFIX}:user:{_glob_escaped(pseudonym)}:*"
        keys = sorted(k.decode() for k in client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
        return keys
    except redis.RedisError as exc:
        raise RtrecError(f"redis at {settings.redis.url}: {exc}") from None
    finally:
        client.close()


def _glob_escaped(text: str) -> str:
    """``text`` matched literally by a Redis glob (a raw id, with pseudonymisation off, may
    hold glob characters)."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


EraseLake = Callable[[str, Path], None]  # (pseudonym, report path) -> runs the erase job


def forget_user(
    settings: Settings,
    user_id: str,
    erase_lake: EraseLake,
    report_dir: Path,
    say: Callable[[str], None] = print,
) -> Forgotten:
    """Forget the user whose raw id is ``user_id`` in Flink state, Redis and Delta, and append
    the audit row. ``erase_lake`` runs the Spark erase job (``erase_job_runner``)."""
    if not user_id.strip():
        raise RtrecError("the user id is empty: pass the id of the user to forget")
    pseudonym = pseudonymiser(settings)(user_id)
    done = Forgotten(pseudonym, _now_ms(), _requested_by(), socket.gethostname())
    done.forget = publish_forget(settings, pseudonym, done.requested_at)
    say(
        f"flink: forget record at {done.forget.topic}[{done.forget.partition}]@"
        f"{done.forget.offset} (events before offsets {done.forget.event_offsets})"
    )
    done.redis_keys = delete_redis_keys(settings, pseudonym)
    say(f"redis: {len(done.redis_keys)} keys deleted")
    report_dir.mkdir(parents=True, exist_ok=True)
    report = report_dir / f"erasure-{pseudonym}-{done.requested_at}.json"
    erase_lake(pseudonym, report)
    done.delta = json.loads(report.read_text())
    report.unlink()
    say(f"delta: {done.delta_rows} rows deleted from {len(done.delta)} user tables")
    done.completed_at = _now_ms()
    path = append_audit(settings, done)
    say(f"audit: appended to {path} (user {pseudonym})")
    return done


def erase_job_runner(
    settings: Settings, job_args: Sequence[str], spark_master: str, log_dir: Path
) -> EraseLake:
    """Run ``jobs/spark/erase_user.py`` under spark-submit in the spark runtime, with the
    ``--env``/``--set`` arguments ``job_args`` that reproduce ``settings``."""
    from rtrec.launch import run_to_completion, spark_job_command

    def erase(pseudonym: str, report: Path) -> None:
        command = spark_job_command(
            settings,
            "erase_user",
            [*job_args, "--user-id", pseudonym, "--report", str(report)],
            master=spark_master,
        )
        run_to_completion("erase_user", command, log_dir / "erase_user.log", timeout_s=1800)

    return erase


def audit_row(done: Forgotten) -> dict[str, Any]:
    """The audit record: the pseudonym only, and what each store lost."""
    forget = done.forget
    return {
        "pseudonym": done.pseudonym,
        REQUESTED_AT: done.requested_at,
        "completed_at": done.completed_at,
        "requested_by": done.requested_by,
        "host": done.host,
        "delta_rows_deleted": done.delta_rows,
        "delta_tables": json.dumps(done.delta),
        "redis_keys_deleted": done.redis_keys,
        "forget_topic": forget.topic if forget else None,
        "forget_partition": forget.partition if forget else None,
        "forget_offset": forget.offset if forget else None,
    }


def append_audit(settings: Settings, done: Forgotten) -> str:
    """Append the audit row to the Delta table ``audit.erasures`` (delta-rs: no Spark needed,
    append-only, so a record is never rewritten); returns the table's path."""
    import pyarrow as pa
    from deltalake import write_deltalake

    schema = pa.schema(
        [
            ("pseudonym", pa.string()),
            (REQUESTED_AT, pa.int64()),
            ("completed_at", pa.int64()),
            ("requested_by", pa.string()),
            ("host", pa.string()),
            ("delta_rows_deleted", pa.int64()),
            ("delta_tables", pa.string()),
            ("redis_keys_deleted", pa.list_(pa.string())),
            ("forget_topic", pa.string()),
            ("forget_partition", pa.int32()),
            ("forget_offset", pa.int64()),
        ]
    )
    path = settings.lake.table_path(*AUDIT_TABLE)
    table = pa.Table.from_pylist([audit_row(done)], schema=schema)
    write_deltalake(path, table, mode="append")
    return path


def _requested_by() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers): the uid is still a name
        import os

        return f"uid:{os.getuid()}"


def _now_ms() -> int:
    return int(time.time() * 1000)
