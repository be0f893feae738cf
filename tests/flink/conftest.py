"""Shared set-up of the Flink component tests."""

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def flink_logs(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The mini-cluster's logs, RocksDB's among them, in this session's temporary directory:
    PyFlink's default is a folder inside the installed package, where they pile up."""
    os.environ["FLINK_LOG_DIR"] = str(tmp_path_factory.mktemp("flink-logs"))
