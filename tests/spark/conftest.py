"""One local SparkSession (with Delta, from the runtime's spark-defaults) per test session."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rtrec.config import Settings, load_settings


@pytest.fixture(scope="session")
def spark_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    lake = tmp_path_factory.mktemp("lake")
    return load_settings("local", [f"lake.root={lake}", f"lake.checkpoint_root={lake / '_ck'}"])


@pytest.fixture(scope="session")
def spark(spark_settings: Settings) -> Iterator[Any]:
    from pyspark.sql import SparkSession

    from rtrec.batch.session import create_spark_session

    SparkSession.builder.master("local[2]")
    session = create_spark_session(spark_settings, "tests")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def lake_dir(spark_settings: Settings, request: pytest.FixtureRequest) -> Path:
    return Path(spark_settings.lake.root) / request.node.name
