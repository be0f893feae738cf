"""The dashboard in headless Chromium against the real API, Kafka, Redis, MLflow and the
behaviour-features Flink job: its numbers move as events flow.

Events (valid and malformed) go to Kafka; the features job counts them, routes the malformed to
the dead-letter topic, commits its offsets and writes features and A/B windows, which the
online-store sync copies to Redis. The scoring and CF jobs are not started (a model and a
second and third mini-cluster cost minutes on two cores): their output topics get records in
their own format, and the sync carries them to Redis like theirs.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import Stack, free_ports

from rtrec.config import Settings, load_settings
from rtrec.launch import RunningJob, app_job_command, flink_job_command, start_job
from rtrec.producer import produce
from rtrec.registry.mlflow_registry import CHAMPION, register_pyfunc, set_alias
from rtrec.registry.popularity import K, popularity_python_model
from rtrec.schema.events import CLICK, EVENT_ID, EVENT_TS, IMPRESSION, MODEL_VERSION, REC_ID
from rtrec.sources import Malformed
from rtrec.sources.simulator import Simulator

pytestmark = pytest.mark.integration

MODEL = "dashboard-test"  # a model of its own: other tests register versions too
READER_KEY = "local-reader-key"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_S = 150
SCREENSHOT = Path(__file__).resolve().parents[2] / ".run" / "screenshots" / "dashboard.png"


@pytest.fixture
def dashboard_stack(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, list[str]]:
    """Topics of this test's own, a model name of its own, Flink at parallelism 1, and user ids
    pseudonymised (the key in the environment the API and the jobs inherit)."""
    _, args = stack.isolated("dash")
    overrides = [
        *args[3::2],
        f"mlflow.model_name={MODEL}",
        "flink.parallelism=1",
        "privacy.pseudonymise=true",
    ]
    settings = load_settings("local", overrides)
    monkeypatch.setenv(settings.privacy.key_env, "dashboard-test-key")
    return settings, [
        "--env",
        "local",
        *(a for o in overrides for a in ("--set", o)),
    ]


@pytest.fixture
def api_url(dashboard_stack: tuple[Settings, list[str]]) -> Iterator[str]:
    """The API (with the dashboard) served by uvicorn on a free port, in a thread."""
    import uvicorn

    from rtrec.serving.api import create_app

    settings, _ = dashboard_stack
    (port,) = free_ports(1)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=15)


def eventually(check: Callable[[], bool], what: str, jobs: list[RunningJob]) -> None:
    """Wait for ``check`` to hold, failing at once if a job dies."""
    deadline = time.monotonic() + TIMEOUT_S
    while not check():
        for job in jobs:
            assert job.alive(), f"{job.name} died:\n{job.tail()}"
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def number(page: Any, selector: str) -> float | None:
    text = page.inner_text(selector).replace(",", "").strip()
    try:
        return float(text.split()[0])
    except (ValueError, IndexError):
        return None  # a dash: not loaded yet


def rows(page: Any, table: str) -> list[list[str]]:
    """The cells of the body of the table ``table`` (a CSS selector), row by row (an empty
    table's note row included)."""
    return [
        [cell.inner_text().strip() for cell in row.query_selector_all("td")]
        for row in page.query_selector_all(f"{table} tbody tr")
    ]


def send_raw(settings: Settings, topic: str, records: list[tuple[str, Any]]) -> None:
    """Records to a job's output topic, in its format: what the job would have written."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
    for key, value in records:
        producer.produce(topic, json.dumps(value).encode(), key.encode())
    assert producer.flush(30) == 0
    producer.close()


def test_dashboard_follows_the_stream_in_a_browser(
    dashboard_stack: tuple[Settings, list[str]],
    api_url: str,
    tmp_path: Path,
) -> None:
    import httpx
    from playwright.sync_api import sync_playwright

    settings, args = dashboard_stack
    topics = settings.kafka.topics
    # The page is public; its data needs the read scope.
    assert httpx.get(f"{api_url}/dashboard").status_code == 200
    assert httpx.get(f"{api_url}/v1/dashboard/stream").status_code == 401

    version = register_pyfunc(
        settings, popularity_python_model(["i1", "i2"]), pd.DataFrame({K: [2]})
    ).version
    set_alias(settings, CHAMPION, version)

    simulator = Simulator(settings.simulator, events=300, malformed=12, days=1)
    stream = list(simulator.stream())
    events = [r for r in stream if isinstance(r, dict)]
    malformed = sum(isinstance(r, Malformed) for r in stream)
    assert malformed == 12
    # Answers to served lists, in the first minute of event time (one A/B window, closed when
    # the rest of the day's events move the watermark past it).
    start = settings.simulator.start_ts_ms
    shown = [
        {
            **events[n],
            EVENT_ID: f"ab-{n}",
            "event_type": IMPRESSION if n < 8 else CLICK,
            EVENT_TS: start + 1_000 + n,
            REC_ID: f"rec-{n}",
            MODEL_VERSION: version,
        }
        for n in range(10)
    ]
    user = Counter(e["user_id"] for e in events).most_common(1)[0][0]
    item = events[0]["item_id"]

    logs = tmp_path / "logs"
    logs.mkdir()
    jobs = [
        start_job(
            "features", flink_job_command(settings, "behaviour_features", args), logs / "f.log"
        ),
        start_job("online store", app_job_command(settings, "online_store", args), logs / "s.log"),
    ]
    user_data = tmp_path / "chromium-profile"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch_persistent_context(
                str(user_data),
                executable_path=CHROMIUM,
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1280, "height": 1400},
            )
            page = browser.new_page()
            page.goto(f"{api_url}/dashboard?key={READER_KEY}")
            assert "key=" not in page.url  # taken from the address, then removed from it
            eventually(lambda: number(page, "#events-total") == 0, "an empty events topic", jobs)
            assert page.inner_text("#dlq-total") == "0"
            eventually(
                lambda: [version, CHAMPION] in [r[:2] for r in rows(page, "#versions")],
                "the registered champion",
                jobs,
            )

            produce(settings, [*shown, *stream[: len(stream) // 2]], source="test")
            produce(settings, stream[len(stream) // 2 :], source="test")
            total = len(shown) + len(stream)
            eventually(
                lambda: number(page, "#events-total") == total, f"{total} events shown", jobs
            )
            eventually(
                lambda: (number(page, "#event-rate") or 0) > 0, "a non-zero event rate", jobs
            )
            # Each malformed payload is dead-lettered once (the count reads the records: the
            # commit markers of the job's transactions are not counted).
            eventually(lambda: number(page, "#dlq-total") == malformed, "dead letters", jobs)

            def lag_of(job: str) -> str:
                return next((r[2] for r in rows(page, "#lag") if r[0] == job), "")

            eventually(lambda: lag_of("behaviour features") == "0", "the job caught up", jobs)
            assert lag_of("scoring") == "no commits yet"  # not running in this test
            eventually(
                lambda: [version, "champion", "1", "8", "2"] in [r[:5] for r in rows(page, "#ab")],
                "the A/B window of the champion",
                jobs,
            )

            # The user inspector takes the id the shop knows; the store holds its pseudonym.
            page.fill("#user-id", user)
            page.click("#user-form button")
            eventually(lambda: page.inner_text("#user-stored-as") != "", "the pseudonym", jobs)
            stored_as = page.inner_text("#user-stored-as")
            assert stored_as.startswith("p_") and user not in stored_as
            mine = [e for e in [*shown, *events] if e["user_id"] == user]
            eventually(
                lambda: (
                    ["events", str(len(mine))]
                    in rows(page, "#user-features table[data-group=totals]")
                ),
                "the user's totals",
                jobs,
            )
            # Recent items: items the user touched (impressions aside), newest first.
            eventually(
                lambda: [len(r) for r in rows(page, "#user-recent")][:1] == [2], "recents", jobs
            )
            recent = rows(page, "#user-recent")
            touched = {e["item_id"] for e in mine if e["event_type"] != IMPRESSION}
            assert {item for item, _ in recent} <= touched
            assert [when for _, when in recent] == sorted((w for _, w in recent), reverse=True)
            assert page.inner_text("#user-recs").count("no recommendations") == 1

            # A list as the scoring job writes it: the page shows it with reasons, and its
            # freshness (computed 350 ms after its event).
            now = int(time.time() * 1000)
            record = {
                "user_id": stored_as,
                "rec_id": "rec-live",
                "event_id": mine[-1][EVENT_ID],
                "event_ts": now - 350,
                "model_version": version,
                "arm": "champion",
                "items": [
                    {"item_id": "i7", "score": 0.9, "source": "cf", "reason": "bought with i3"},
                    {"item_id": "i8", "score": 0.5, "source": "trending", "reason": "trending"},
                ],
                "computed_at": now,
            }
            send_raw(settings, topics.recommendations, [(stored_as, record)])
            eventually(
                lambda: "bought with i3" in page.inner_text("#user-recs"), "the live list", jobs
            )
            assert f"model {version}, arm champion" in page.inner_text("#user-rec-meta")
            eventually(lambda: number(page, "#fresh-lists") == 1, "one list's freshness", jobs)
            assert page.inner_text("#fresh-p50") == "350 ms"
            # The inspector resolved the id as /v1 does: the API serves that list for it.
            served = httpx.get(
                f"{api_url}/v1/users/{user}/recommendations", headers={"X-API-Key": READER_KEY}
            )
            assert served.status_code == 200 and served.json()["rec_id"] == "rec-live"

            # The item view: neighbours and bought-together lists as their jobs publish them.
            send_raw(
                settings,
                topics.item_neighbours,
                [(item, {"item_id": item, "neighbours": [{"item_id": "n1", "score": 0.75}]})],
            )
            send_raw(
                settings,
                topics.bought_together,
                [(item, {"item_id": item, "items": [{"item_id": "b1", "score": 3.0}]})],
            )
            page.fill("#item-id", item)
            page.click("#item-form button")
            eventually(
                lambda: (
                    rows(page, "#item-neighbours") == [["n1", "0.75"]]
                    and rows(page, "#item-together") == [["b1", "3"]]
                ),
                "the item's neighbours and bought-together items",
                jobs,
            )
            eventually(
                lambda: page.query_selector("#item-features table") is not None,
                "the item's window features",
                jobs,
            )
            assert "error" not in (page.get_attribute("#status", "class") or "")

            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, SCREENSHOT)
            print(f"dashboard screenshot: {shot} (copied to {SCREENSHOT})")
            browser.close()
    finally:
        for job in jobs:
            job.stop()
