"""Registering model versions and moving aliases in the MLflow registry (no stages: aliases are
the supported path). Consumers load ``models:/<name>@<alias>``."""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from typing import Any

from rtrec.config import Settings

CHAMPION = "champion"
CHALLENGER = "challenger"
GIT_COMMIT_TAG = "git_commit"


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def git_commit(settings: Settings) -> str:
    """The commit of the code that produced a run ("unknown" outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(settings.root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def register_pyfunc(
    settings: Settings,
    python_model: Any,
    input_example: Any,
    params: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
    experiment: str = "rtrec",
) -> RegisteredVersion:
    """Log ``python_model`` in a new run (params, metrics, git commit, signature from the input
    example) and register it as a new version of the configured model."""
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run(tags={GIT_COMMIT_TAG: git_commit(settings)}) as run:
        mlflow.log_params(params or {})
        mlflow.log_metrics(metrics or {})
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=python_model,
            input_example=input_example,
            registered_model_name=settings.mlflow.model_name,
        )
    return RegisteredVersion(
        settings.mlflow.model_name, str(info.registered_model_version), run.info.run_id
    )


def set_alias(settings: Settings, alias: str, version: str) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(settings.mlflow.tracking_uri, settings.mlflow.tracking_uri)
    client.set_registered_model_alias(settings.mlflow.model_name, alias, version)


def alias_version(settings: Settings, alias: str) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(settings.mlflow.tracking_uri, settings.mlflow.tracking_uri)
    return str(client.get_model_version_by_alias(settings.mlflow.model_name, alias).version)


def load_by_alias(settings: Settings, alias: str) -> Any:
    """The pyfunc model the alias points at now."""
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    return load_pyfunc(f"models:/{settings.mlflow.model_name}@{alias}")


def load_pyfunc(uri: str) -> Any:
    """``mlflow.pyfunc.load_model(uri)``, downloading into a directory removed once the model is
    loaded (rtrec's models read their artifacts in ``load_context``). MLflow's default is a new
    temp directory per call that nothing removes: a scoring job kept a copy of every version
    it swapped to, and a CI run left 16."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="rtrec-model-") as download:
        return mlflow.pyfunc.load_model(uri, dst_path=download)
