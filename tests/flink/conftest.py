"""Shared set-up of the Flink component tests."""

import os

import pytest

from rtrec.cf import CfEvent
from rtrec.schema import encode


@pytest.fixture(scope="session", autouse=True)
def flink_logs(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The mini-cluster's logs, RocksDB's among them, in this session's temporary directory:
    PyFlink's default is a folder inside the installed package, where they pile up."""
    os.environ["FLINK_LOG_DIR"] = str(tmp_path_factory.mktemp("flink-logs"))


def cf_payload(event: CfEvent) -> bytes:
    """An online-CF test event as the producer writes it to Kafka (one session per user)."""
    return encode(
        {
            "event_id": event.event_id,
            "user_id": event.user_id,
            "session_id": f"s-{event.user_id}",
            "item_id": event.item_id,
            "event_type": event.event_type,
            "event_ts": event.event_ts,
        }
    )
