"""Local service management without starting any service: configs, pids, ports, stopping."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rtrec.config import Settings, load_settings
from rtrec.errors import RtrecError
from rtrec.local import State, down, services, status
from rtrec.local.process import (
    group_members,
    pid_alive,
    port_in_use,
    start_detached,
    stop,
)
from rtrec.local.services import (
    Kafka,
    Redis,
    new_cluster_id,
    render_redis_conf,
    render_server_properties,
)
from rtrec.local.topics import topic_configs

pytestmark = pytest.mark.unit


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        "local",
        overrides=[
            f"local_services.run_dir={tmp_path / 'run'}",
            "local_services.kafka.port=19092",
            "local_services.kafka.controller_port=19093",
            "kafka.partitions=3",
        ],
    )


def _properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()  # reaped: the pid now names no process
    return process.pid


def test_server_properties_describe_a_single_node_kraft_broker(settings: Settings) -> None:
    assert settings.local_services is not None
    data_dir = Path("/data/kafka")
    props = _properties(render_server_properties(settings.local_services, 3, data_dir))

    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert "CONTROLLER:PLAINTEXT" in props["listener.security.protocol.map"].split(",")
    assert props["log.dirs"] == str(data_dir)
    assert props["num.partitions"] == "3"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
    ):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "false"


def test_kafka_runs_the_broker_on_the_jar_directory_with_the_configured_heap(
    settings: Settings,
) -> None:
    kafka = Kafka(settings)
    command = kafka.command()
    assert "-Xmx512m" in command and "-Xms512m" in command
    assert command[command.index("-cp") + 1] == f"{settings.root / '.jars' / 'kafka'}/*"
    assert command[-2:] == ["kafka.Kafka", str(kafka.dir / "server.properties")]
    assert kafka.ports == {
        "local_services.kafka.port": 19092,
        "local_services.kafka.controller_port": 19093,
    }


def test_cluster_ids_are_22_base64url_characters_not_starting_with_a_dash() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", i) for i in ids)


def test_redis_conf_binds_the_configured_address_and_stays_in_the_foreground() -> None:
    conf = render_redis_conf("127.0.0.1", 16379, Path("/data/redis")).splitlines()
    assert "bind 127.0.0.1" in conf
    assert "port 16379" in conf
    assert "daemonize no" in conf
    assert 'dir "/data/redis"' in conf


def test_upsert_topics_and_model_control_are_compacted(settings: Settings) -> None:
    configs = topic_configs(settings)
    topics = settings.kafka.topics
    compacted = {name for name, config in configs.items() if config.get("cleanup.policy")}
    assert compacted == {
        topics.model_control,
        topics.user_features,
        topics.item_features,
        topics.item_neighbours,
        topics.cf_scores,
        topics.recommendations,
        topics.ab_metrics,
        topics.bought_together,
        topics.forget,
    }
    assert all(configs[name] == {"cleanup.policy": "compact"} for name in compacted)
    # The others delete by time, with the configured retention (record time is event time).
    retained = {"retention.ms": str(settings.kafka.retention_ms)}
    assert {name: configs[name] for name in configs.keys() - compacted} == {
        topics.events: retained,
        topics.dlq: retained,
        topics.late_events: retained,
    }


def test_a_listening_socket_makes_its_port_in_use() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
    assert not port_in_use("127.0.0.1", port)


def test_a_dead_pid_in_the_pid_file_is_stale(settings: Settings) -> None:
    redis = Redis(settings)
    redis.dir.mkdir(parents=True)
    pid = _dead_pid()
    redis.pid_file.write_text(f"{pid}\n")

    assert not pid_alive(pid)
    assert redis.inspect().state is State.STALE


def test_a_live_pid_of_another_program_is_stale(settings: Settings) -> None:
    # After a reboot the pid may name an unrelated process; ours run inside their run dir.
    redis = Redis(settings)
    redis.dir.mkdir(parents=True)
    redis.pid_file.write_text(f"{os.getpid()}\n")
    assert redis.inspect().state is State.STALE


def test_an_unreaped_child_counts_as_dead_and_is_reaped() -> None:
    process = subprocess.Popen(["true"])
    proc_dir = Path(f"/proc/{process.pid}")
    deadline = time.monotonic() + 5
    while "Z" not in proc_dir.joinpath("stat").read_text().rsplit(")", 1)[1][:3]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not pid_alive(process.pid)
    assert not proc_dir.exists()


def test_without_a_pid_file_every_service_is_stopped(settings: Settings) -> None:
    assert [s.state for s in status(settings)] == [State.STOPPED] * 3
    assert [s.name for s in services(settings)] == ["kafka", "mlflow", "redis"]


def test_down_removes_a_stale_pid_file_and_tolerates_stopped_services(
    settings: Settings,
) -> None:
    kafka = Kafka(settings)
    kafka.dir.mkdir(parents=True)
    kafka.pid_file.write_text(f"{_dead_pid()}\n")
    lines: list[str] = []

    down(settings, report=lines.append)

    assert not kafka.pid_file.exists()
    assert [line.split()[0] for line in lines] == ["redis", "mlflow", "kafka"]
    assert "not running" in lines[0] and "not running" in lines[1]
    assert f"stale pid file {kafka.pid_file} removed" in lines[2]


def test_environments_without_local_services_are_refused(settings: Settings) -> None:
    cluster = settings.model_copy(update={"local_services": None, "env": "cluster"})
    with pytest.raises(RtrecError, match="local_services"):
        status(cluster)


def test_stop_terminates_the_whole_process_group(tmp_path: Path) -> None:
    process = start_detached(["sh", "-c", "sleep 60 & exec sleep 60"], tmp_path, tmp_path / "log")
    deadline = time.monotonic() + 5
    while len(group_members(process.pid)) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)

    result = stop(process.pid, timeout_s=10)

    assert not result.killed
    assert group_members(process.pid) == []


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    ignore_term = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    log = tmp_path / "log"
    process = start_detached([sys.executable, "-c", ignore_term], tmp_path, log)
    deadline = time.monotonic() + 10
    while "ready" not in log.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.01)

    result = stop(process.pid, timeout_s=0.5)

    assert result.killed
    assert not pid_alive(process.pid)
