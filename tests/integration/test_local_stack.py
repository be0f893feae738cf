"""`rtrec local`: the real Kafka, MLflow and Redis, started, used, inspected and refused."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from rtrec.config import load_settings
from rtrec.errors import RtrecError
from rtrec.local import State, status, up
from rtrec.local.topics import COMPACTED

if TYPE_CHECKING:
    from conftest import Stack

pytestmark = pytest.mark.integration


def test_every_service_is_healthy(stack: Stack) -> None:
    statuses = status(stack.settings)
    assert [(s.name, s.state) for s in statuses] == [
        ("kafka", State.HEALTHY),
        ("mlflow", State.HEALTHY),
        ("redis", State.HEALTHY),
    ]
    assert all(s.pid is not None for s in statuses)


def test_topics_exist_with_partitions_and_cleanup_policy(stack: Stack) -> None:
    settings = stack.settings
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    metadata = admin.list_topics(timeout=10).topics
    expected = {
        getattr(settings.kafka.topics, field): "compact" if field in COMPACTED else "delete"
        for field in type(settings.kafka.topics).model_fields
    }
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in expected]
    policies = {
        resource.name: future.result(timeout=10)["cleanup.policy"].value
        for resource, future in admin.describe_configs(resources).items()
    }
    assert policies == expected
    for name in expected:
        assert len(metadata[name].partitions) == settings.kafka.partitions, name


def test_a_message_goes_through_kafka(stack: Stack) -> None:
    servers = stack.settings.kafka.bootstrap_servers
    topic = stack.settings.kafka.topics.events
    key = uuid.uuid4().hex.encode()
    producer = Producer({"bootstrap.servers": servers})
    producer.produce(topic, key=key, value=b"probe")
    assert producer.flush(10) == 0
    producer.close()

    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": f"probe-{key.decode()}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None and message.key() == key:
                assert message.value() == b"probe"
                return
        pytest.fail("the produced message was not consumed within 30 s")
    finally:
        consumer.close()


def test_produce_names_a_missing_topic_and_an_unreachable_broker(stack: Stack) -> None:
    from rtrec.local.daemons import free_ports
    from rtrec.producer import produce

    missing = load_settings("local", [*stack.overrides, "kafka.topics.events=no-such-topic"])
    with pytest.raises(RtrecError, match="topic no-such-topic does not exist"):
        produce(missing, [])
    (closed,) = free_ports(1)
    address = f"127.0.0.1:{closed}"
    away = load_settings("local", [*stack.overrides, f"kafka.bootstrap_servers={address}"])
    with pytest.raises(RtrecError, match=re.escape(f"cannot reach Kafka at {address}")):
        produce(away, [])


def test_redis_stores_and_returns_a_value(redis_client: Any) -> None:
    redis_client.set("rtrec:probe", "value")
    assert redis_client.get("rtrec:probe") == b"value"


def test_mlflow_health_endpoint_answers(stack: Stack) -> None:
    url = f"{stack.settings.mlflow.tracking_uri}/health"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200


def test_a_model_logged_by_another_process_loads_by_alias(stack: Stack) -> None:
    # What training and scoring do: log + register + alias in one process, load in another,
    # with nothing shared but the tracking URI (artifacts go through the server).
    uri = stack.settings.mlflow.tracking_uri
    log_model = textwrap.dedent(
        f"""
        import mlflow
        from mlflow import MlflowClient
        from mlflow.pyfunc import PythonModel

        class Length(PythonModel):
            def predict(self, context, model_input: list[str], params=None) -> list[int]:
                return [len(x) for x in model_input]

        mlflow.set_tracking_uri({uri!r})
        mlflow.set_experiment("local-stack-probe")
        with mlflow.start_run():
            mlflow.log_text("hello", "probe.txt")
            info = mlflow.pyfunc.log_model(
                name="model", python_model=Length(), pip_requirements=[],
                registered_model_name="local-stack-probe",
            )
        MlflowClient().set_registered_model_alias(
            "local-stack-probe", "champion", info.registered_model_version
        )
        """
    )
    subprocess.run([sys.executable, "-c", log_model], check=True, timeout=120)

    import mlflow

    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/local-stack-probe@champion")
    assert list(model.predict(["ab", "abcd"])) == [2, 4]
    run = mlflow.search_runs(experiment_names=["local-stack-probe"], output_format="list")[0]
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert mlflow.artifacts.load_text(f"{run.info.artifact_uri}/probe.txt") == "hello"


def test_up_again_leaves_the_running_services_alone(stack: Stack) -> None:
    before = {s.name: s.pid for s in status(stack.settings)}
    lines: list[str] = []
    after = up(stack.settings, report=lines.append)
    assert {s.name: s.pid for s in after} == before
    for name in ("kafka", "mlflow", "redis"):
        assert any(line.startswith(name) and "already running" in line for line in lines)
    assert any("topics: all present" in line for line in lines)


def test_a_taken_port_is_reported_and_nothing_starts(unstarted_overrides: list[str]) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        settings = load_settings(
            "local", [*unstarted_overrides, f"local_services.redis.port={port}"]
        )
        with pytest.raises(RtrecError, match=rf"redis: port {port} .*in use"):
            up(settings, report=print)
    assert [s.state for s in status(settings)] == [State.STOPPED] * 3


def test_the_cli_prints_one_healthy_line_per_service(stack: Stack) -> None:
    rtrec = Path(sys.executable).parent / "rtrec"
    result = subprocess.run(
        [str(rtrec), "local", "status", *stack.set_args()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["kafka", "mlflow", "redis"]
    local = stack.settings.local_services
    assert local is not None
    assert lines[0].split()[1] == f"{local.kafka.host}:{local.kafka.port}"
    assert all(" healthy (pid " in line for line in lines)
