"""The behaviour-features pipeline honours forget records (docs/privacy.md): a forgotten user's
totals count only the events sent after the request, none of the user's records that holds an
earlier event survives (those sent are retracted), and other users are untouched."""

import json
from collections import Counter
from typing import Any

import pytest

from rtrec.config import load_settings
from rtrec.config.settings import AbSettings
from rtrec.features.definitions import EVENTS, TOTALS_GROUP
from rtrec.schema import encode

pytestmark = [pytest.mark.component, pytest.mark.flink]

AB = AbSettings(challenger_share=0.0, salt="test-ab", metrics_window_ms=3_600_000)
START = 1_767_225_600_000
STEP = 60_000  # a minute between one user's events
FORGOTTEN, KEPT = "p_forgotten", "p_kept"
EVENTS_EACH = 12
CUT = 8  # the request covers the forgotten user's first 8 events


def offset_of(n: int) -> int:
    return START + n * STEP


def event(user: str, n: int) -> dict[str, Any]:
    return {
        "event_id": f"{user}-{n}",
        "user_id": user,
        "session_id": f"{user}-s",
        "item_id": f"i{n % 5}",
        "event_type": "view" if n % 3 else "click",
        "event_ts": offset_of(n),
    }


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from rtrec.streaming.behaviour_features import build_behaviour_features_pipeline
    from rtrec.streaming.environment import create_table_env
    from rtrec.streaming.kafka import forget_file_ddl, raw_file_ddl

    base = tmp_path_factory.mktemp("forget-features")
    settings = load_settings("local", [f"flink.checkpoint_dir={base / 'checkpoints'}"])
    lines = [encode(event(user, n)) for n in range(EVENTS_EACH) for user in (FORGOTTEN, KEPT)]
    (base / "events.txt").write_bytes(b"\n".join(lines) + b"\n")
    forget = {"user_id": FORGOTTEN, "requested_at": 1, "offsets": {"0": offset_of(CUT)}}
    (base / "forgets.json").write_text(json.dumps(forget) + "\n")

    t_env = create_table_env(settings, "rtrec-test-forget")
    t_env.execute_sql(raw_file_ddl("raw_file", base / "events.txt", offset_is_event_ts=True))
    t_env.execute_sql(forget_file_ddl("forgets", base / "forgets.json"))
    tables = build_behaviour_features_pipeline(t_env, "raw_file", AB, forgets="forgets")
    out: dict[str, Any] = {}
    for name in ("user_totals", "user_features"):
        with getattr(tables, name).execute().collect() as rows:
            out[name] = [(row.get_row_kind().name, tuple(row)) for row in rows]
    return out


def as_json(user: str, group: str, start: Any, end: Any, features: Any) -> str:
    values = {name: float(value) for name, value in dict(features).items()}
    return json.dumps([user, group, start, end, values], sort_keys=True)


def standing(rows: list[tuple[str, tuple[Any, ...]]]) -> Counter[str]:
    """The records left once every retraction is applied, as JSON (a multiset)."""
    left: Counter[str] = Counter()
    for kind, row in rows:
        text = as_json(*row)
        if kind in ("INSERT", "UPDATE_AFTER"):
            left[text] += 1
        else:
            left[text] -= 1
    return +left


def test_the_forgotten_users_totals_count_only_events_after_the_request(
    results: dict[str, Any],
) -> None:
    totals = {}
    for text in standing(results["user_totals"]):
        user, group, start, end, features = json.loads(text)
        assert group == TOTALS_GROUP and user not in totals
        totals[user] = (start, end, features[EVENTS])
    assert totals[KEPT] == (offset_of(0), offset_of(EVENTS_EACH - 1), float(EVENTS_EACH))
    assert totals[FORGOTTEN] == (offset_of(CUT), offset_of(EVENTS_EACH - 1), EVENTS_EACH - CUT)
    # The totals of before the request were sent and then deleted.
    kinds = [kind for kind, row in results["user_totals"] if row[0] == FORGOTTEN]
    assert "DELETE" in kinds or "UPDATE_BEFORE" in kinds


def reference(events: list[dict[str, Any]]) -> set[str]:
    from rtrec.features.reference import recent_records, session_features, user_window_features

    found = [*user_window_features(events), *session_features(events), *recent_records(events)]
    return {as_json(r.entity_id, r.group, r.window_start, r.window_end, r.features) for r in found}


def test_no_record_of_the_forgotten_user_holds_an_earlier_event(
    results: dict[str, Any],
) -> None:
    left = standing(results["user_features"])
    forgotten = {text for text in left if json.loads(text)[0] == FORGOTTEN}
    kept = {text for text in left if json.loads(text)[0] == KEPT}
    # A record holding only later events equals the reference over those events alone.
    assert forgotten <= reference([event(FORGOTTEN, n) for n in range(CUT, EVENTS_EACH)])
    assert kept == reference([event(KEPT, n) for n in range(EVENTS_EACH)])
    # Without the request the user would have records holding earlier events: none is left.
    every = reference([event(FORGOTTEN, n) for n in range(EVENTS_EACH)])
    assert every - reference([event(FORGOTTEN, n) for n in range(CUT, EVENTS_EACH)])
