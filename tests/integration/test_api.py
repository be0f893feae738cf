"""The HTTP API against the real Redis and Kafka: keys and scopes, bad input answered with its
reason (and nothing sent), reads from the online store, and every response and the event body
held to the OpenAPI document the app publishes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Stack, consume_all

from rtrec.config import Settings
from rtrec.serving.online_store import store_key
from rtrec.sources.simulator import Simulator

pytestmark = pytest.mark.integration

READ = {"X-API-Key": "local-reader-key"}
WRITE = {"X-API-Key": "local-writer-key"}


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[tuple[Any, Settings, Any]]:
    from fastapi.testclient import TestClient
    from redis import Redis

    from rtrec.serving.api import create_app

    settings, _ = stack.isolated("api")
    redis = Redis.from_url(settings.redis.url)
    with TestClient(create_app(settings)) as client:
        yield client, settings, redis
    redis.close()


def _events(settings: Settings, count: int) -> list[dict[str, Any]]:
    return list(Simulator(settings.simulator, events=count, days=1).events())


def test_keys_and_scopes(api: tuple[Any, Settings, Any]) -> None:
    client, settings, _ = api
    path = "/v1/users/u1/recommendations"
    missing = client.get(path)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "ApiKey"
    assert client.get(path, headers={"X-API-Key": "guess"}).status_code == 401
    event = _events(settings, 1)
    refused = client.post("/v1/events", json=event, headers=READ)
    assert refused.status_code == 403 and "'write' scope" in refused.json()["detail"]
    assert client.get(path, headers=WRITE).status_code in (200, 404)  # writers may read
    assert client.get("/healthz").json() == {"status": "ok"}  # probes need no key


def test_bad_events_get_their_reason_and_nothing_is_sent(api: tuple[Any, Settings, Any]) -> None:
    client, settings, _ = api
    good, other = _events(settings, 2)
    bad_type = {**other, "event_type": "teleport"}
    answer = client.post("/v1/events", json=[good, bad_type, {"user_id": "u"}], headers=WRITE)
    assert answer.status_code == 422
    problems = answer.json()["detail"]
    assert [p["index"] for p in problems] == [1, 2]
    assert "teleport" in problems[0]["reason"] and "event_id" in problems[1]["reason"]
    not_json = client.post("/v1/events", content=b"{oops", headers=WRITE)
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["detail"]
    assert client.post("/v1/events", json=[], headers=WRITE).status_code == 422
    too_many = [good] * (settings.serving.max_events_per_request + 1)
    assert client.post("/v1/events", json=too_many, headers=WRITE).status_code == 422
    assert client.get("/v1/items/i1/similar?k=0", headers=READ).status_code == 422
    sent = list(consume_all(settings.kafka.bootstrap_servers, settings.kafka.topics.events))
    assert sent == []  # a refused batch sends nothing, not even its good events


def test_events_go_to_kafka_keyed_by_user(api: tuple[Any, Settings, Any]) -> None:
    client, settings, _ = api
    events = _events(settings, 5)
    one = client.post("/v1/events", json=events[0], headers=WRITE)
    many = client.post("/v1/events", json=events[1:], headers=WRITE)
    assert (one.status_code, one.json()) == (202, {"accepted": 1})
    assert (many.status_code, many.json()) == (202, {"accepted": 4})
    received = {}
    for message in consume_all(settings.kafka.bootstrap_servers, settings.kafka.topics.events):
        record = json.loads(message.value())
        received[record["event_id"]] = (message.key().decode(), record)
    assert set(received) == {e["event_id"] for e in events}
    for event in events:
        key, record = received[event["event_id"]]
        assert key == event["user_id"] and record["item_id"] == event["item_id"]


def test_reads_come_from_the_online_store_and_match_the_published_contract(
    api: tuple[Any, Settings, Any],
) -> None:
    import jsonschema
    from openapi_spec_validator import validate as validate_spec

    client, settings, redis = api
    document = client.get("/openapi.json").json()
    validate_spec(document)
    components = document["components"]
    # Every /v1 operation documents the key it needs; the probes need none.
    assert components["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"
    for path, operations in document["paths"].items():
        for operation in operations.values():
            assert ("security" in operation) == path.startswith("/v1/"), path

    def conforms(instance: Any, name: str) -> None:
        jsonschema.validate(
            instance, {"$ref": f"#/components/schemas/{name}", "components": components}
        )

    items = [
        {"item_id": f"i{n}", "score": 1.0 / (n + 1), "source": "cf", "reason": "because"}
        for n in range(12)
    ]
    record = {
        "user_id": "api-u1",
        "rec_id": "r1",
        "event_id": "e1",
        "event_ts": 5,
        "model_version": "3",
        "arm": "champion",
        "computed_at": 6,
        "items": items,
    }
    redis.set(store_key("user", "api-u1", "recommendations"), json.dumps(record))
    redis.set(store_key("item", "api-i1", "neighbours"), json.dumps(items[:3]))
    got = client.get("/v1/users/api-u1/recommendations?k=4", headers=READ)
    assert got.status_code == 200 and got.json() == {**record, "items": items[:4]}
    conforms(got.json(), "Recommendations")
    assert len(client.get("/v1/users/api-u1/recommendations", headers=READ).json()["items"]) == 10
    similar = client.get("/v1/items/api-i1/similar?k=2", headers=READ)
    assert similar.json() == {"item_id": "api-i1", "items": items[:2]}
    conforms(similar.json(), "Related")
    unknown = client.get("/v1/users/nobody/recommendations", headers=READ)
    assert unknown.status_code == 404 and "nobody" in unknown.json()["detail"]
    assert client.get("/v1/items/api-i1/bought-together", headers=READ).status_code == 404
    # The documented event body is the validator's contract.
    conforms(_events(settings, 1)[0], "Event")
    with pytest.raises(jsonschema.ValidationError):
        conforms({"event_id": "e", "event_type": "teleport"}, "Event")
    metrics = client.get("/metrics").text
    assert 'rtrec_api_requests_total{route="/v1/users/{user_id}/recommendations"' in metrics
