"""API keys come from the environment first, from config only as a local fallback."""

from __future__ import annotations

import pytest

from rtrec.config import load_settings
from rtrec.serving.api import Caller, api_keys

pytestmark = pytest.mark.unit


def test_the_environment_overrides_config_and_a_key_without_value_is_disabled() -> None:
    local = load_settings("local", environ={})
    assert api_keys(local, environ={}) == {
        "local-reader-key": Caller("reader", frozenset({"read"})),
        "local-writer-key": Caller("writer", frozenset({"read", "write"})),
    }
    keys = api_keys(local, environ={"RTREC_API_KEY_WRITER": "s3cret"})
    assert keys["s3cret"].name == "writer" and "local-writer-key" not in keys
    # conf/base.yaml holds no key values: without the environment, a cluster has no keys.
    required = ("KAFKA_BOOTSTRAP_SERVERS", "MLFLOW_TRACKING_URI", "REDIS_URL")
    paths = ("FLINK_CHECKPOINT_DIR", "LAKE_ROOT", "LAKE_CHECKPOINT_ROOT")
    environ = {**dict.fromkeys(required, "x"), **dict.fromkeys(paths, "/x")}
    cluster = load_settings("cluster", environ=environ)
    assert api_keys(cluster, environ={}) == {}
