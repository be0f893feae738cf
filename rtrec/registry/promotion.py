"""Moving ``champion`` (``rtrec models list | promote | rollback``): each move is an MLflow alias
change followed by a ``rtrec.model_control`` record, which scoring jobs read to hot-swap.

Promotion remembers the champion it replaces under ``previous-champion``; rollback swaps the
two, so a second rollback undoes the first.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from rtrec.config import Settings
from rtrec.errors import RtrecError
from rtrec.registry.gate import GATE_METRIC, control_record
from rtrec.registry.mlflow_registry import CHAMPION

PREVIOUS = "previous-champion"


@dataclass(frozen=True)
class VersionRow:
    version: str
    aliases: tuple[str, ...]
    created_ms: int
    run_id: str
    metric: float | None  # the gate metric of its run, if it logged one


def _client(settings: Settings) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(settings.mlflow.tracking_uri, settings.mlflow.tracking_uri)


def list_versions(settings: Settings) -> list[VersionRow]:
    """Every version of the configured model, newest first."""
    client = _client(settings)
    name = settings.mlflow.model_name
    rows = []
    for found in client.search_model_versions(f"name = '{name}'"):
        version = client.get_model_version(name, found.version)  # aliases are on this one
        metric = None
        if version.run_id:
            metric = client.get_run(version.run_id).data.metrics.get(GATE_METRIC)
        rows.append(
            VersionRow(
                str(version.version),
                tuple(sorted(version.aliases)),
                int(version.creation_timestamp),
                str(version.run_id),
                metric,
            )
        )
    return sorted(rows, key=lambda row: int(row.version), reverse=True)


def _alias(client: Any, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def promote(settings: Settings, version: str) -> dict[str, object]:
    """``champion`` -> ``version``; the replaced champion becomes ``previous-champion``."""
    from mlflow.exceptions import MlflowException

    client = _client(settings)
    name = settings.mlflow.model_name
    try:
        client.get_model_version(name, version)
    except MlflowException:
        raise RtrecError(f"{name} has no version {version}") from None
    current = _alias(client, name, CHAMPION)
    if current == version:
        raise RtrecError(f"version {version} is already the champion")
    if current is not None:
        client.set_registered_model_alias(name, PREVIOUS, current)
    client.set_registered_model_alias(name, CHAMPION, version)
    return publish(settings, version)


def rollback(settings: Settings) -> dict[str, object]:
    """``champion`` back to ``previous-champion`` (and the two swap)."""
    client = _client(settings)
    name = settings.mlflow.model_name
    previous = _alias(client, name, PREVIOUS)
    if previous is None:
        raise RtrecError(f"{name} has no {PREVIOUS} to roll back to")
    current = _alias(client, name, CHAMPION)
    client.set_registered_model_alias(name, CHAMPION, previous)
    if current is not None:
        client.set_registered_model_alias(name, PREVIOUS, current)
    return publish(settings, previous)


def publish(settings: Settings, version: str) -> dict[str, object]:
    """The ``model_control`` record of champion = ``version``, keyed by the model name (the
    topic is compacted: the latest move per model is what a restarted job reads)."""
    from confluent_kafka import Producer

    name = settings.mlflow.model_name
    record = control_record(name, CHAMPION, version, int(time.time() * 1000))
    producer = Producer(
        {"bootstrap.servers": settings.kafka.bootstrap_servers, "enable.idempotence": True}
    )
    errors: list[str] = []
    producer.produce(
        settings.kafka.topics.model_control,
        key=name.encode(),
        value=json.dumps(record).encode(),
        on_delivery=lambda err, _msg: errors.append(str(err)) if err else None,
    )
    undelivered = producer.flush(30)
    producer.close()
    if undelivered or errors:
        raise RtrecError(
            f"could not publish to {settings.kafka.topics.model_control}: {errors or 'timeout'}"
        )
    return record
