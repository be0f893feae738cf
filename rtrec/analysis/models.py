"""The compare-models notebook's data: offline quality from the train job's MLflow runs, the
registered versions and how fresh they are, how fresh the served lists are, and the online A/B
metrics per arm and model version."""

from __future__ import annotations

import json
import time
from dataclasses import fields
from typing import Any

from rtrec.analysis.topics import read_topic
from rtrec.config import Settings
from rtrec.features.definitions import CONVERSION, PURCHASES, WINDOW_END, WINDOW_START
from rtrec.registry.gate import GATE_METRIC
from rtrec.registry.promotion import list_versions
from rtrec.schema.events import EVENT_TS, MODEL_VERSION
from rtrec.scoring.ab import ARM, CLICKS, CTR, IMPRESSIONS
from rtrec.streaming.scoring import COMPUTED_AT
from rtrec.training.metrics import RankingMetrics

TRAINING_EXPERIMENT = "rtrec-training"  # where jobs/spark/train.py logs its runs
# The train job logs the model's metrics unprefixed and each baseline's as "<name>.<metric>".
SASREC = "sasrec"
SCOPES = ("all", "new")  # every target, and targets new to the user
QUALITY_COLUMNS = tuple(
    f"{scope}_{f.name}" for scope in SCOPES for f in fields(RankingMetrics) if f.name != "examples"
)
MODEL, RUN_ID, VERSION, STARTED, GATE = "model", "run_id", "version", "started", "gate"
ALIASES, REGISTERED, AGE_H, DATA_UNTIL, DATA_AGE_H = (
    "aliases",
    "registered",
    "age_h",
    "trained_on_events_before",
    "data_age_h",
)
LATENCY_S, WINDOWS = "latency_s", "windows"


def _client(settings: Settings) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(settings.mlflow.tracking_uri, settings.mlflow.tracking_uri)


def quality_table(
    settings: Settings, experiment: str = TRAINING_EXPERIMENT, max_runs: int = 5
) -> Any:
    """One row per (train run, model): the registered version the run produced, the gate's
    verdict and the full-ranking metrics of SASRec and of each baseline on the run's split.
    Only runs that registered a version of ``settings.mlflow.model_name``; newest first."""
    import pandas as pd

    columns = [VERSION, RUN_ID, STARTED, GATE, MODEL, *QUALITY_COLUMNS]
    client = _client(settings)
    found = client.get_experiment_by_name(experiment)
    name = settings.mlflow.model_name
    versions = {v.run_id: str(v.version) for v in client.search_model_versions(f"name = '{name}'")}
    if found is None or not versions:
        return pd.DataFrame(columns=columns)
    runs = client.search_runs(
        [found.experiment_id], order_by=["attributes.start_time DESC"], max_results=500
    )
    rows = []
    for run in [r for r in runs if r.info.run_id in versions][:max_runs]:
        by_model: dict[str, dict[str, float]] = {}
        for key, value in run.data.metrics.items():
            model, _, metric = key.rpartition(".")
            if metric in QUALITY_COLUMNS:
                by_model.setdefault(model or SASREC, {})[metric] = value
        for model, metrics in by_model.items():
            rows.append(
                {
                    VERSION: versions[run.info.run_id],
                    RUN_ID: run.info.run_id,
                    STARTED: pd.to_datetime(run.info.start_time, unit="ms", utc=True),
                    GATE: run.data.tags.get("gate", ""),
                    MODEL: model,
                    **metrics,
                }
            )
    return pd.DataFrame(rows, columns=columns)


def versions_table(settings: Settings, now_ms: int | None = None) -> Any:
    """Every registered version of the model, newest first: its aliases, when it was
    registered and how long ago, the gate metric of its run, and the model's data freshness:
    the split time its training data ended at (a param of train-job runs) and its age."""
    import pandas as pd

    columns = [VERSION, ALIASES, REGISTERED, AGE_H, GATE_METRIC, DATA_UNTIL, DATA_AGE_H, RUN_ID]
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    client = _client(settings)
    rows = []
    for row in list_versions(settings):
        split_ts = None
        if row.run_id and row.run_id != "None":
            split_ts = client.get_run(row.run_id).data.params.get("split_ts")
        data_until = None if split_ts is None else int(split_ts)
        rows.append(
            {
                VERSION: row.version,
                ALIASES: ", ".join(row.aliases),
                REGISTERED: pd.to_datetime(row.created_ms, unit="ms", utc=True),
                AGE_H: (now_ms - row.created_ms) / 3_600_000,
                GATE_METRIC: row.metric,
                DATA_UNTIL: None
                if data_until is None
                else pd.to_datetime(data_until, unit="ms", utc=True),
                DATA_AGE_H: None if data_until is None else (now_ms - data_until) / 3_600_000,
                RUN_ID: row.run_id,
            }
        )
    return pd.DataFrame(rows, columns=columns)


def list_freshness(settings: Settings, max_records: int = 50_000, timeout_s: float = 60.0) -> Any:
    """Per list on the recommendations topic: the model version and arm that served it, and
    the seconds from its triggering event's time to its computation (``computed_at`` minus
    ``event_ts``). Event→list latency for live traffic; for replayed history it is the
    history's age."""
    import pandas as pd

    records = [
        json.loads(m.value)
        for m in read_topic(
            settings.kafka.bootstrap_servers,
            settings.kafka.topics.recommendations,
            max_records,
            timeout_s,
        )
        if m.value is not None
    ]
    rows = [
        {
            MODEL_VERSION: r.get(MODEL_VERSION),
            ARM: r.get(ARM),
            LATENCY_S: (r[COMPUTED_AT] - r[EVENT_TS]) / 1000.0,
        }
        for r in records
        if r.get(COMPUTED_AT) is not None and r.get(EVENT_TS) is not None
    ]
    return pd.DataFrame(rows, columns=[MODEL_VERSION, ARM, LATENCY_S])


def ab_windows(settings: Settings, timeout_s: float = 60.0) -> Any:
    """The online A/B metrics per event-time window, model version and arm, as the behaviour
    features job last wrote them to the A/B topic (an upsert topic: the last record per key)."""
    import pandas as pd

    latest: dict[bytes | None, dict[str, Any]] = {}
    for message in read_topic(
        settings.kafka.bootstrap_servers, settings.kafka.topics.ab_metrics, None, timeout_s
    ):
        if message.value is None:
            latest.pop(message.key, None)
        else:
            latest[message.key] = json.loads(message.value)
    columns = [WINDOW_START, WINDOW_END, MODEL_VERSION, ARM, IMPRESSIONS, CLICKS, PURCHASES]
    frame = pd.DataFrame(list(latest.values()), columns=columns)
    for column in (WINDOW_START, WINDOW_END):
        frame[column] = pd.to_datetime(frame[column], unit="ms", utc=True)
    return frame.sort_values([WINDOW_START, ARM, MODEL_VERSION]).reset_index(drop=True)


def ab_summary(windows: Any) -> Any:
    """Totals per arm and model version over all windows, with CTR (clicks per impression)
    and conversion (purchases per impression) from the totals, not a mean of window ratios."""
    import pandas as pd

    columns = [ARM, MODEL_VERSION, WINDOWS, IMPRESSIONS, CLICKS, PURCHASES, CTR, CONVERSION]
    if windows.empty:
        return pd.DataFrame(columns=columns)
    grouped = windows.groupby([ARM, MODEL_VERSION], sort=True)
    totals = grouped[[IMPRESSIONS, CLICKS, PURCHASES]].sum()
    totals.insert(0, WINDOWS, grouped.size())
    shown = totals[IMPRESSIONS].where(totals[IMPRESSIONS] > 0)
    totals[CTR] = totals[CLICKS] / shown
    totals[CONVERSION] = totals[PURCHASES] / shown
    return totals.reset_index()[columns]
