"""The train job end to end on a local lake and a real MLflow registry (SQLite backend): gold
read at pinned Delta versions, metrics and artifacts logged, a version registered, and the gate
deciding the challenger (the registry round trip against the MLflow server is an integration
test)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import bronze_frame, simulate

from rtrec.batch.curate import run_curate_job
from rtrec.batch.ingest import BRONZE_EVENTS, EVENT_DATE
from rtrec.config import Settings, load_settings
from rtrec.registry.mlflow_registry import CHALLENGER, CHAMPION, GIT_COMMIT_TAG
from rtrec.training.job import run_train_job

pytestmark = [pytest.mark.component, pytest.mark.spark]


def test_train_register_and_gate(spark: Any, spark_settings: Settings, tmp_path: Path) -> None:
    import mlflow
    from mlflow import MlflowClient

    lake = tmp_path / "lake"
    overrides = [
        f"lake.root={lake}",
        f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
        "training.backend=local",
        "training.epochs=3",
    ]
    settings = load_settings("local", overrides)
    bronze = bronze_frame(spark, simulate(spark_settings).arrivals)
    bronze.write.format("delta").partitionBy(EVENT_DATE).save(
        settings.lake.table_path(*BRONZE_EVENTS)
    )
    run_curate_job(settings)

    first = run_train_job(settings)
    assert first.decision.passed and first.decision.reason == "no champion yet"
    client = MlflowClient(settings.mlflow.tracking_uri)
    name = settings.mlflow.model_name
    assert str(client.get_model_version_by_alias(name, CHALLENGER).version) == first.version
    run = client.get_run(first.run_id)
    assert run.data.tags[GIT_COMMIT_TAG] != "unknown"
    assert run.data.params["delta_version.gold.user_sequences"] == "0"
    assert run.data.metrics["all_ndcg_at_10"] == pytest.approx(
        first.results["sasrec"].all_targets.ndcg_at_10
    )
    # Every baseline is logged beside the model, scored on the same split.
    for baseline in ("popularity", "recent_popularity", "item-KNN", "ALS", "online_CF"):
        assert f"{baseline}.new_ndcg_at_10" in run.data.metrics, baseline
    artifacts = {a.path for a in client.list_artifacts(first.run_id)}
    assert {"results.md", "ndcg_at_10.png"} <= artifacts

    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{name}@{CHALLENGER}")
    # An empty history and one of an unknown item still get full lists.
    out = model.predict(pd.DataFrame({"history": [[], ["no-such-item"]]}), params={"k": 5})
    assert [len(items) for items in out["items"]] == [5, 5]

    # The same data and seed again: equal, so not better than the champion; forced, it passes.
    client.set_registered_model_alias(name, CHAMPION, first.version)
    second = run_train_job(settings)
    assert not second.decision.passed and "does not beat" in second.decision.reason
    assert str(client.get_model_version_by_alias(name, CHALLENGER).version) == first.version
    forced = run_train_job(load_settings("local", [*overrides, "training.force=true"]))
    assert forced.decision.reason == "forced"
    assert str(client.get_model_version_by_alias(name, CHALLENGER).version) == forced.version
