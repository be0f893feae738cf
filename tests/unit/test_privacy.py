"""Pseudonyms: keyed, stable, printable; where the key comes from; what ingestion hides; and
what the forget flow writes (docs/privacy.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from rtrec.config import Settings, load_settings
from rtrec.errors import RtrecError
from rtrec.privacy import (
    pseudonym,
    pseudonym_key,
    pseudonymise_event,
    pseudonymise_payload,
    pseudonymiser,
)
from rtrec.privacy.forget import (
    ForgetRecord,
    Forgotten,
    _glob_escaped,
    audit_row,
    forget_record,
)
from rtrec.schema import EVENT_SCHEMA, encode, validate

pytestmark = pytest.mark.unit

KEY = b"a-test-key"


def settings(*overrides: str) -> Settings:
    return load_settings("local", list(overrides), environ={})


def test_a_pseudonym_is_stable_printable_and_keyed() -> None:
    first = pseudonym(KEY, "u042")
    assert first == pseudonym(KEY, "u042")
    assert re.fullmatch(r"p_[0-9a-f]{24}", first)
    assert pseudonym(b"another-key", "u042") != first
    assert pseudonym(KEY, "u043") != first
    # A known value: the key and the id go through HMAC-SHA256, not a plain hash.
    assert first == "p_" + __import__("hmac").new(KEY, b"u042", "sha256").hexdigest()[:24]
    assert pseudonym(KEY, "ünïcode") != pseudonym(KEY, "unicode")


def test_a_pseudonymised_event_still_passes_the_schema() -> None:
    event = {
        "event_id": "e1",
        "user_id": "alice@example.com",
        "session_id": "s1",
        "item_id": "i1",
        "event_type": "view",
        "event_ts": 1_767_225_600_000,
    }
    hidden = pseudonymise_event(event, lambda u: pseudonym(KEY, u))
    check = validate(encode(hidden, EVENT_SCHEMA))
    assert check.ok and check.record is not None
    assert check.record["user_id"] == pseudonym(KEY, "alice@example.com")
    assert event["user_id"] == "alice@example.com"  # the caller's event is not changed


def test_off_leaves_ids_and_payloads_as_they_are() -> None:
    hide = pseudonymiser(settings())
    assert hide("u042") == "u042"
    payload = b'{"user_id": "u042",  "event_type": 3}'
    assert pseudonymise_payload(payload, hide) is payload


def test_on_reads_the_key_from_the_environment_first_then_the_file(tmp_path: Path) -> None:
    on = settings("privacy.pseudonymise=true")
    assert pseudonymiser(on, {"RTREC_PSEUDONYM_KEY": "k1"})("u1") == pseudonym(b"k1", "u1")
    secret = tmp_path / "key"
    secret.write_text("k2\n")  # secret files often end with a newline: not part of the key
    with_file = settings("privacy.pseudonymise=true", f"privacy.key_file={secret}")
    assert pseudonym_key(with_file, {}) == b"k2"
    assert pseudonym_key(with_file, {"RTREC_PSEUDONYM_KEY": "k1"}) == b"k1"
    renamed = settings("privacy.pseudonymise=true", "privacy.key_env=SHOP_KEY")
    assert pseudonym_key(renamed, {"SHOP_KEY": "k3", "RTREC_PSEUDONYM_KEY": "k1"}) == b"k3"


def test_on_without_a_key_is_one_error_naming_the_variable_and_the_file_setting(
    tmp_path: Path,
) -> None:
    on = settings("privacy.pseudonymise=true")
    with pytest.raises(RtrecError) as missing:
        pseudonymiser(on, {})
    assert "RTREC_PSEUDONYM_KEY" in str(missing.value)
    assert "privacy.key_env" in str(missing.value) and "privacy.key_file" in str(missing.value)
    absent = settings("privacy.pseudonymise=true", f"privacy.key_file={tmp_path / 'nope'}")
    with pytest.raises(RtrecError, match=r"privacy.key_file: cannot read .*nope"):
        pseudonymiser(absent, {})
    (tmp_path / "empty").write_text("\n")
    empty = settings("privacy.pseudonymise=true", f"privacy.key_file={tmp_path / 'empty'}")
    with pytest.raises(RtrecError, match=r"privacy.key_file: .*empty"):
        pseudonymiser(empty, {})


def test_a_malformed_payload_that_names_a_user_is_hidden_too() -> None:
    def hide(user: str) -> str:
        return pseudonym(KEY, user)

    named = pseudonymise_payload(b'{"user_id": "u042", "event_type": "teleport"}', hide)
    assert json.loads(named) == {"user_id": pseudonym(KEY, "u042"), "event_type": "teleport"}
    assert b"u042" not in named
    for unattributable in (b"not json u042", b'["u042"]', b'{"user_id": 42}'):
        assert pseudonymise_payload(unattributable, hide) == unattributable


def test_the_forget_record_and_the_audit_row_hold_the_pseudonym_only() -> None:
    user = pseudonym(KEY, "alice@example.com")
    record = json.loads(forget_record(user, 1_000, {"0": 12, "1": 7}))
    assert record == {"user_id": user, "requested_at": 1_000, "offsets": {"0": 12, "1": 7}}
    done = Forgotten(user, 1_000, "ops", "host-1")
    done.forget = ForgetRecord("rtrec.privacy.forget", 1, 3, {"0": 12})
    done.delta = [
        {"table": "bronze.events", "rows_deleted": 9, "files_vacuumed": 2},
        {"table": "silver.events", "rows_deleted": 8, "files_vacuumed": 1},
    ]
    done.redis_keys = [f"rtrec:user:{user}:totals"]
    done.completed_at = 2_000
    row: dict[str, Any] = audit_row(done)
    assert row["pseudonym"] == user and row["delta_rows_deleted"] == 17
    assert row["forget_partition"] == 1 and row["forget_offset"] == 3
    assert "alice" not in json.dumps(row)


def test_a_raw_id_is_matched_literally_in_redis_globs() -> None:
    assert _glob_escaped("u*[1]?") == "u\\*\\[1\\]\\?"
    assert _glob_escaped("p_0123abcd") == "p_0123abcd"


class FakeRedis:
    """The one call the recommendations endpoint makes."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    async def get(self, key: str) -> str | None:
        return self.values.get(key)

    async def aclose(self) -> None:
        return None


class FakeSink:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, events: list[dict[str, Any]]) -> None:
        self.sent.extend(events)

    def close(self, timeout_s: float = 10.0) -> None:
        return None


def test_the_api_stores_and_reads_under_the_pseudonym(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from rtrec.serving.api import create_app

    monkeypatch.setenv("RTREC_PSEUDONYM_KEY", KEY.decode())
    on = load_settings("local", ["privacy.pseudonymise=true"])
    user = pseudonym(KEY, "alice")
    stored = {"user_id": user, "items": [{"item_id": "i1", "score": 1.0}] * 3}
    sink = FakeSink()
    redis = FakeRedis({f"rtrec:user:{user}:recommendations": json.dumps(stored)})
    app = create_app(on, redis=redis, events=sink)  # type: ignore[arg-type]
    headers = {"X-API-Key": "local-writer-key"}
    with TestClient(app) as client:
        got = client.get("/v1/users/alice/recommendations?k=2", headers=headers)
        assert got.status_code == 200
        assert got.json()["user_id"] == "alice" and len(got.json()["items"]) == 2
        assert client.get("/v1/users/bob/recommendations", headers=headers).status_code == 404
        event = {
            "event_id": "e1",
            "user_id": "alice",
            "session_id": "s1",
            "item_id": "i1",
            "event_type": "view",
            "event_ts": 1_767_225_600_000,
        }
        assert client.post("/v1/events", json=event, headers=headers).status_code == 202
    assert [e["user_id"] for e in sink.sent] == [user]
