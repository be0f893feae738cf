"""Layered, closed configuration: every error names its source and key."""

from pathlib import Path

import pytest

from rtrec.config import ConfigError, load_settings

pytestmark = pytest.mark.unit

CLUSTER_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS": "kafka-0:9092,kafka-1:9092",
    "MLFLOW_TRACKING_URI": "http://mlflow:5000",
    "REDIS_URL": "redis://redis:6379/0",
    "FLINK_CHECKPOINT_DIR": "s3://bucket/flink",
    "LAKE_ROOT": "s3a://bucket/lake",
    "LAKE_CHECKPOINT_ROOT": "s3a://bucket/checkpoints",
}


def test_local_layers_base_and_resolves_paths_against_the_root() -> None:
    settings = load_settings("local", environ={})
    assert settings.kafka.topics.events == "rtrec.events"
    assert settings.spark.shuffle_partitions == 2  # local.yaml overrides base.yaml's 4
    assert settings.spark.conf["spark.driver.host"] == "127.0.0.1"
    assert Path(settings.lake.root).is_absolute()
    assert settings.lake.table_path("bronze", "events").endswith("/bronze/events")
    assert settings.local_services is not None


def test_cluster_takes_addresses_from_placeholders_with_types_and_defaults() -> None:
    settings = load_settings("cluster", environ=CLUSTER_ENV)
    assert settings.kafka.bootstrap_servers == "kafka-0:9092,kafka-1:9092"
    assert settings.flink.parallelism == 4  # ${FLINK_PARALLELISM:-4}, typed as int
    assert settings.lake.root == "s3a://bucket/lake"  # URIs are not turned into local paths
    assert settings.local_services is None


def test_missing_placeholder_names_file_key_and_variable() -> None:
    env = {k: v for k, v in CLUSTER_ENV.items() if k != "REDIS_URL"}
    with pytest.raises(ConfigError, match=r"conf/cluster\.yaml: redis\.url: .*REDIS_URL"):
        load_settings("cluster", environ=env)


def test_env_variable_overrides_and_set_win_in_that_order() -> None:
    environ = {"RTREC__KAFKA__PARTITIONS": "6", "RTREC__FLINK__PARALLELISM": "3"}
    settings = load_settings("local", ["flink.parallelism=1"], environ=environ)
    assert settings.kafka.partitions == 6
    assert settings.flink.parallelism == 1


@pytest.mark.parametrize(
    ("overrides", "environ", "message"),
    [
        (["kafka.bootstrap_server=x"], {}, "--set: kafka.bootstrap_server: unknown key"),
        (["flink.parallelism=0"], {}, "--set: flink.parallelism: Input should be greater"),
        (
            [],
            {"RTREC__LAKE__INGEST_TRIGGER": "sometimes"},
            "environment RTREC__LAKE__INGEST_TRIGGER: lake.ingest_trigger: Input should be",
        ),
        (["kafka"], {}, "--set kafka: expected key=value"),
    ],
)
def test_errors_name_the_source_and_key(
    overrides: list[str], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings("local", overrides, environ=environ)
    assert str(error.value).startswith(message), str(error.value)


def test_a_typo_in_a_file_names_that_file(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    root_conf = Path(__file__).resolve().parents[2] / "conf"
    (conf / "base.yaml").write_text((root_conf / "base.yaml").read_text())
    (conf / "dev.yaml").write_text("redis:\n  ulr: redis://x\n")
    with pytest.raises(ConfigError, match=r"dev\.yaml: redis\.ulr: unknown key"):
        load_settings("dev", conf_dir=conf, environ={})


def test_unknown_environment_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"no such config file \(environments: cluster, local\)"):
        load_settings("staging", environ={})
