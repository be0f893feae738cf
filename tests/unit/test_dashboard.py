"""The dashboard's arithmetic (totals, lag, rate, freshness, A/B rows), its cache, and the page's
own consistency (every element the script looks up exists)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time

import pytest

from rtrec.config import load_settings
from rtrec.serving.dashboard import (
    STATIC,
    Cached,
    ab_rows,
    feature_hash,
    freshness,
    job_groups,
    lag,
    percentile,
    rate,
    recent,
    static_file,
    topic_total,
)

pytestmark = pytest.mark.unit


def test_totals_sum_a_topics_partitions_only() -> None:
    ends = {("e", 0): 5, ("e", 1): 7, ("dlq", 0): 2}
    assert topic_total(ends, "e") == 12
    assert topic_total(ends, "dlq") == 2
    assert topic_total(ends, "absent") == 0


def test_lag_counts_what_a_group_has_not_committed() -> None:
    ends = {("e", 0): 10, ("e", 1): 20, ("other", 0): 99}
    assert lag({}, ends, ["e"]) is None  # never committed: not started or no checkpoint yet
    assert lag({("other", 0): 3}, ends, ["e"]) is None  # commits elsewhere do not count
    assert lag({("e", 0): 10, ("e", 1): 20}, ends, ["e"]) == 0
    assert lag({("e", 0): 4, ("e", 1): 15}, ends, ["e"]) == 6 + 5
    # A partition without a commit is read from its start: all of it is behind.
    assert lag({("e", 0): 10}, ends, ["e"]) == 20
    # A commit past the end (the end read a moment earlier) is not negative lag.
    assert lag({("e", 0): 11, ("e", 1): 20}, ends, ["e"]) == 0
    assert lag({("e", 0): 10, ("other", 0): 90}, ends, ["e", "other"]) == 20 + 9


def test_rate_is_the_slope_between_the_oldest_and_newest_sample() -> None:
    assert rate([]) is None
    assert rate([(1.0, 100)]) is None
    assert rate([(1.0, 100), (1.0, 150)]) is None
    assert rate([(1.0, 100), (2.0, 130), (3.0, 160)]) == pytest.approx(30.0)
    assert rate([(0.0, 0), (4.0, 10)]) == pytest.approx(2.5)
    assert rate([(0.0, 50), (1.0, 40)]) == 0.0  # a topic recreated smaller: no negative rate


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 11)]
    assert percentile(values, 0.5) == 5.0
    assert percentile(values, 0.95) == 10.0
    assert percentile(values, 0.3) == 3.0
    assert percentile([7.0], 0.99) == 7.0


def test_freshness_of_lists_is_computed_minus_event_time() -> None:
    records = [
        {"event_ts": 1_000, "computed_at": 1_200},
        {"event_ts": 2_000, "computed_at": 2_900},
        {"event_ts": 3_000, "computed_at": 3_050},
        {"event_ts": None, "computed_at": 9_000},  # no event time: not measured
    ]
    summary = freshness(records, now_ms=4_000)
    assert summary == {
        "lists": 3,
        "p50_ms": 200.0,
        "p95_ms": 900.0,
        "max_ms": 900.0,
        "newest_age_ms": 4_000 - 3_050,
    }
    assert freshness([], now_ms=1)["lists"] == 0
    assert freshness([], now_ms=1)["p50_ms"] is None


def test_ab_rows_total_the_windows_of_each_version_and_arm() -> None:
    def window(start: int, impressions: int, clicks: int, purchases: int) -> str:
        ctr = clicks / impressions if impressions else None
        return json.dumps(
            {
                "start_ms": start,
                "impressions": impressions,
                "clicks": clicks,
                "purchases": purchases,
                "ctr": ctr,
            }
        )

    series = {
        ("3", "champion"): {"120000": window(120_000, 10, 1, 0), "60000": window(60_000, 30, 5, 3)},
        ("3", "challenger"): {},  # no windows yet: no row
        ("4", "challenger"): {"60000": window(60_000, 0, 0, 0)},
    }
    rows = ab_rows(series)
    assert [(r["model_version"], r["arm"]) for r in rows] == [
        ("3", "champion"),
        ("4", "challenger"),
    ]
    champion, challenger = rows
    assert (champion["windows"], champion["impressions"], champion["clicks"]) == (2, 40, 6)
    assert champion["purchases"] == 3
    assert champion["ctr"] == pytest.approx(6 / 40)
    assert champion["conversion"] == pytest.approx(3 / 40)
    # The latest window by start time, not by the hash's field order.
    assert champion["last_window_start"] == 120_000
    assert champion["last_window_ctr"] == pytest.approx(0.1)
    assert challenger["ctr"] is None and challenger["conversion"] is None


def test_recent_items_are_newest_first_without_the_window_bounds() -> None:
    features = feature_hash(
        {b"i1": b"1000.0", b"i2": b"3000.0", b"i3": b"2000.0", b"start_ms": b"1", b"end_ms": b"9"}
    )
    assert recent(features) == [
        {"id": "i2", "ts": 3000},
        {"id": "i3", "ts": 2000},
        {"id": "i1", "ts": 1000},
    ]


def test_each_job_is_watched_under_its_own_consumer_group() -> None:
    settings = load_settings("local")
    groups = job_groups(settings)
    base = settings.flink.consumer_group
    assert groups["behaviour features"] == (f"{base}-features", (settings.kafka.topics.events,))
    assert groups["scoring"][0] == f"{base}-scoring"
    assert groups["online CF"][0] == f"{base}-cf"
    sync_group, synced = groups["online-store sync"]
    assert sync_group == f"{base}-online-store"
    assert settings.kafka.topics.recommendations in synced
    assert settings.kafka.topics.events not in synced


def test_cached_answers_share_one_fetch_per_ttl() -> None:
    calls = []
    gate = threading.Event()

    def fetch() -> int:
        gate.wait(5)  # held until every caller is waiting on the same refresh
        calls.append(time.monotonic())
        return len(calls)

    async def scenario() -> tuple[list[int], int, int]:
        cached = Cached(fetch, ttl_s=0.2)
        waiting = [asyncio.create_task(cached.get()) for _ in range(5)]
        await asyncio.sleep(0.05)
        gate.set()
        first = list(await asyncio.gather(*waiting))
        within = await cached.get()
        await asyncio.sleep(0.25)
        after = await cached.get()
        return first, within, after

    first, within, after = asyncio.run(scenario())
    assert first == [1] * 5 and within == 1
    assert after == 2


def test_every_element_the_script_uses_is_on_the_page() -> None:
    html = static_file("dashboard.html").decode()
    script = static_file("dashboard.js").decode()
    ids = set(re.findall(r'id="([^"]+)"', html))
    used = set(re.findall(r'\$\("([^"]+)"\)', script)) | set(re.findall(r'fill\("([^"]+)"', script))
    assert used and used <= ids, used - ids
    for name in STATIC:  # the page links each of its files by the route that serves them
        if name != "dashboard.html":
            assert f"/dashboard/static/{name}" in html
