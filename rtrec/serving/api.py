"""The HTTP API (FastAPI): reads only the online store, writes events only to Kafka.

- ``GET /v1/users/{id}/recommendations?k=``: the scoring job's latest list for the user, with
  reasons, the model version, the A/B arm and the ``rec_id`` to send back with impressions and
  clicks (that closes the loop for online metrics).
- ``GET /v1/items/{id}/similar?k=`` (online-CF neighbours) and ``/bought-together?k=``.
- ``POST /v1/events``: one event or a list, checked by the same validator as the stream
  (``rtrec.schema.wire``); all valid -> queued to ``rtrec.events`` (202), else nothing is sent
  and a 422 names each bad event's index and reason.
- ``/healthz``, ``/metrics`` (Prometheus), ``/openapi.json``.

Keys: the ``X-API-Key`` header, checked against ``serving.api_keys``; none or unknown -> 401, a
key without the route's scope -> 403.

Privacy: with ``privacy.pseudonymise`` on, posted events are stored under the user's pseudonym
and a read hashes the user id in its path the same way, so callers only ever use raw ids
(docs/privacy.md).
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations, some of
# which are built inside create_app from the settings.
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel

from rtrec.config import Settings
from rtrec.privacy import pseudonymise_event, pseudonymiser
from rtrec.schema import EVENT_SCHEMA, encode
from rtrec.schema.events import EVENT_TS, SCHEMA_VERSION_KEY, USER_ID
from rtrec.schema.json_schema import json_schema
from rtrec.schema.wire import validate
from rtrec.serving.dashboard import mount_dashboard
from rtrec.serving.online_store import (
    BOUGHT_TOGETHER_GROUP,
    NEIGHBOURS_GROUP,
    RECOMMENDATIONS_GROUP,
    store_key,
)

Scope = Literal["read", "write"]
API_KEY_HEADER = "X-API-Key"


class RankedItem(BaseModel):
    item_id: str
    score: float


class RecommendedItem(RankedItem):
    source: str
    reason: str


class Recommendations(BaseModel):
    user_id: str
    rec_id: str
    event_id: str
    event_ts: int
    model_version: str
    arm: str
    computed_at: int
    items: list[RecommendedItem]


class Related(BaseModel):
    item_id: str
    items: list[RankedItem]


class Accepted(BaseModel):
    accepted: int


class Health(BaseModel):
    status: str


@dataclass(frozen=True)
class Caller:
    name: str
    scopes: frozenset[str]


def api_keys(settings: Settings, environ: dict[str, str] | None = None) -> dict[str, Caller]:
    """Key -> caller, from ``serving.api_keys``: each key from its environment variable, else
    from the config value; a name with neither is disabled."""
    env = os.environ if environ is None else environ
    keys: dict[str, Caller] = {}
    for name, spec in settings.serving.api_keys.items():
        key = env.get(spec.env) or spec.key
        if key:
            keys[key] = Caller(name, frozenset(spec.scopes))
    return keys


class EventSink:
    """Events to Kafka: queued by the client library, which batches them (linger) and sends
    in the background; delivery failures are counted."""

    def __init__(self, settings: Settings) -> None:
        from confluent_kafka import Producer

        self.topic = settings.kafka.topics.events
        self.failed = 0
        self.producer = Producer(
            {
                "bootstrap.servers": settings.kafka.bootstrap_servers,
                "client.id": "rtrec-api",
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
            }
        )

    def send(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.producer.produce(
                self.topic,
                encode(event),
                str(event[USER_ID]).encode(),
                timestamp=int(event[EVENT_TS]),
                on_delivery=self._delivered,
            )
        self.producer.poll(0)

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued, then stop the client's threads: left to the garbage
        collector, a producer an app still references keeps reconnecting after Kafka stops."""
        self.producer.flush(timeout_s)
        self.producer.close()

    def _delivered(self, error: Any, _message: Any) -> None:
        if error is not None:
            self.failed += 1


class Measured:
    """Counts requests and times them per route and status, as plain ASGI middleware:
    Starlette's ``@app.middleware("http")`` runs each request through an extra task and memory
    streams. Replacing it, and the key check below, took the p99 at 2,000 req/s from 26 ms to
    1.7 ms (docs/serving.md)."""

    def __init__(self, app: Any, requests: Any, latency: Any) -> None:
        self.app = app
        self.requests = requests
        self.latency = latency

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app raises

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The router records the matched route in the scope it was given, this one.
            path = getattr(scope.get("route"), "path", "unmatched")
            self.latency.labels(path).observe(time.perf_counter() - started)
            self.requests.labels(path, str(status)).inc()


def create_app(settings: Settings, redis: Any = None, events: EventSink | None = None) -> Any:
    """The ASGI app. ``redis`` (a ``redis.asyncio`` client) and ``events`` default to the
    configured Redis and Kafka."""
    serving = settings.serving
    keys = api_keys(settings)
    hide = pseudonymiser(settings)  # a missing key fails here, at start, not per request
    registry = CollectorRegistry()
    requests = Counter(
        "rtrec_api_requests", "HTTP requests", ["route", "status"], registry=registry
    )
    latency = Histogram(
        "rtrec_api_latency_seconds",
        "request latency",
        ["route"],
        buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
        registry=registry,
    )
    accepted = Counter("rtrec_api_events_accepted", "events sent to Kafka", registry=registry)
    rejected = Counter("rtrec_api_events_rejected", "events refused", registry=registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal redis, events
        if redis is None:
            import redis.asyncio as aioredis

            redis = aioredis.from_url(settings.redis.url)
        if events is None:
            events = EventSink(settings)
        yield
        events.close()
        dashboard.close()
        await redis.aclose()

    app = FastAPI(
        title="rtrec",
        version="1",
        summary="Real-time recommendations: read the online store, send events.",
        lifespan=lifespan,
    )
    app.add_middleware(Measured, requests=requests, latency=latency)

    def authorise(request: Request, scope: Scope) -> None:
        # Checked in the endpoint rather than as a FastAPI dependency: resolving dependencies
        # was the largest share of the API's CPU per request. The OpenAPI document declares
        # the key (see ``guarded``).
        caller = keys.get(request.headers.get(API_KEY_HEADER) or "")
        if caller is None:
            raise HTTPException(
                401,
                f"missing or unknown API key (header {API_KEY_HEADER})",
                headers={"WWW-Authenticate": "ApiKey"},
            )
        if scope not in caller.scopes:
            raise HTTPException(403, f"key {caller.name!r} lacks the {scope!r} scope")

    def guarded(scope: Scope, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Route arguments that document the key and the scope a route needs."""
        return {
            "openapi_extra": {**(extra or {}), "security": [{"ApiKey": []}]},
            "description": f"Needs an API key with the {scope!r} scope.",
            "responses": {
                401: {"description": "no API key, or an unknown one"},
                403: {"description": f"the key lacks the {scope!r} scope"},
            },
        }

    K = Annotated[int, Query(ge=1, le=serving.max_k, description="list length")]
    Id = Annotated[str, Path(min_length=1, max_length=256)]
    default_k = serving.default_k

    async def stored(key: str, what: str) -> Any:
        assert redis is not None
        value = await redis.get(key)
        if value is None:
            raise HTTPException(404, what)
        return json.loads(value)

    @app.get(
        "/v1/users/{user_id}/recommendations", response_model=Recommendations, **guarded("read")
    )
    async def recommendations(request: Request, user_id: Id, k: K = default_k) -> Any:
        authorise(request, "read")
        key = store_key("user", hide(user_id), RECOMMENDATIONS_GROUP)
        record = await stored(key, f"no recommendations for user {user_id!r} yet")
        record["items"] = record["items"][:k]
        record["user_id"] = user_id  # the caller's id, not the pseudonym it is stored under
        return JSONResponse(record)

    async def related(item_id: str, group: str, k: int, what: str) -> Any:
        ranked = await stored(store_key("item", item_id, group), f"no {what} for {item_id!r}")
        return JSONResponse({"item_id": item_id, "items": ranked[:k]})

    @app.get("/v1/items/{item_id}/similar", response_model=Related, **guarded("read"))
    async def similar(request: Request, item_id: Id, k: K = default_k) -> Any:
        authorise(request, "read")
        return await related(item_id, NEIGHBOURS_GROUP, k, "similar items")

    @app.get("/v1/items/{item_id}/bought-together", response_model=Related, **guarded("read"))
    async def bought_together(request: Request, item_id: Id, k: K = default_k) -> Any:
        authorise(request, "read")
        return await related(item_id, BOUGHT_TOGETHER_GROUP, k, "items bought together")

    event_body = {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/Event"},
                            {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/Event"},
                                "maxItems": serving.max_events_per_request,
                            },
                        ]
                    }
                }
            },
        }
    }

    write = guarded("write", event_body)
    write["responses"][422] = {"description": "bad events: nothing was sent"}

    @app.post("/v1/events", status_code=202, response_model=Accepted, **write)
    async def post_events(request: Request) -> Any:
        authorise(request, "write")
        assert events is not None
        try:
            body = json.loads(await request.body())
        except ValueError as exc:
            raise HTTPException(400, f"the body is not valid JSON: {exc}") from None
        batch = body if isinstance(body, list) else [body]
        if not batch or len(batch) > serving.max_events_per_request:
            raise HTTPException(
                422, f"send 1 to {serving.max_events_per_request} events per request"
            )
        valid, problems = [], []
        for index, event in enumerate(batch):
            if isinstance(event, dict):
                event = {SCHEMA_VERSION_KEY: EVENT_SCHEMA.version, **event}
            check = validate(json.dumps(event))
            if check.record is None:
                problems.append({"index": index, "reason": check.error})
            else:
                valid.append(dict(pseudonymise_event(check.record, hide)))
        if problems:
            rejected.inc(len(batch))
            raise HTTPException(422, problems)
        events.send(valid)
        accepted.inc(len(valid))
        return {"accepted": len(valid)}

    # The live dashboard's page and its read-scoped data routes (docs/dashboard.md).
    dashboard = mount_dashboard(app, settings, lambda: redis, authorise, hide)

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Any:
        assert redis is not None
        try:
            await redis.ping()
        except Exception as exc:  # any failure to reach the store is "unhealthy", not a 500
            return JSONResponse({"status": f"online store unreachable: {exc}"}, status_code=503)
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            schema["components"]["schemas"]["Event"] = json_schema(EVENT_SCHEMA)
            schema["components"]["securitySchemes"] = {
                "ApiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def run_api(settings: Settings) -> None:
    """Serve the API with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(
        create_app(settings),
        host=settings.serving.host,
        port=settings.serving.port,
        log_level="warning",
        access_log=False,
    )
