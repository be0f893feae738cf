"""``rtrec models list | promote | rollback`` against the local MLflow server and Kafka: the
champion alias moves, and every move is a model_control record scoring jobs can read."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import Stack, consume_all

from rtrec.cli import main
from rtrec.config import load_settings
from rtrec.local import ensure_topics
from rtrec.registry.mlflow_registry import CHAMPION, alias_version, register_pyfunc
from rtrec.registry.popularity import K, popularity_python_model
from rtrec.registry.promotion import PREVIOUS

pytestmark = pytest.mark.integration

MODEL = "models-cli-test"  # a model of its own: other tests register versions too


def test_promote_and_rollback_publish_every_move(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    overrides = [*stack.overrides, f"mlflow.model_name={MODEL}"]
    settings = load_settings("local", overrides)
    ensure_topics(settings)
    args = ["--env", "local", *(a for o in overrides for a in ("--set", o))]
    versions = [
        register_pyfunc(settings, popularity_python_model(r), pd.DataFrame({K: [3]})).version
        for r in (["a", "b"], ["b", "a"])
    ]

    assert main(["models", "rollback", *args]) == 2  # nothing to roll back to yet
    assert "no previous-champion" in capsys.readouterr().err
    assert main(["models", "promote", "999", *args]) == 2
    assert "has no version 999" in capsys.readouterr().err

    assert main(["models", "promote", versions[0], *args]) == 0
    assert main(["models", "promote", versions[1], *args]) == 0
    assert alias_version(settings, CHAMPION) == versions[1]
    assert alias_version(settings, PREVIOUS) == versions[0]
    assert main(["models", "rollback", *args]) == 0
    assert alias_version(settings, CHAMPION) == versions[0]
    assert alias_version(settings, PREVIOUS) == versions[1]
    capsys.readouterr()
    assert main(["models", "list", *args]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listing[1:]] == versions[::-1]
    assert listing[-1].endswith(CHAMPION)

    records = [
        json.loads(m.value())
        for m in consume_all(settings.kafka.bootstrap_servers, settings.kafka.topics.model_control)
        if m.key() == MODEL.encode()
    ]
    assert [(r["alias"], r["version"]) for r in records] == [
        (CHAMPION, versions[0]),
        (CHAMPION, versions[1]),
        (CHAMPION, versions[0]),
    ]
    assert records[-1]["uri"] == f"models:/{MODEL}/{versions[0]}"
    assert records[0]["ts"] <= records[1]["ts"] <= records[2]["ts"]
