"""Privacy end to end (docs/privacy.md): ids are pseudonymised by the producer, so Kafka, Flink,
Delta and Redis only see pseudonyms; `rtrec privacy forget` then removes one user from the
lake, the online store and the features job's state, and appends an audit row that names the
pseudonym only."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import Stack, consume_all, latest_totals, wait_for

from rtrec.batch.ingest import BRONZE_EVENTS
from rtrec.config import load_settings
from rtrec.features.definitions import ENTITY_ID, FEATURE_GROUP, TOTALS_GROUP
from rtrec.launch import (
    app_job_command,
    flink_job_command,
    run_to_completion,
    spark_job_command,
    start_job,
)
from rtrec.privacy import pseudonym
from rtrec.privacy.forget import AUDIT_TABLE
from rtrec.producer import produce
from rtrec.serving.online_store import store_key

pytestmark = pytest.mark.integration

KEY = "integration-test-pseudonym-key"
USERS = ("alice@example.com", "bob@example.com", "carol@example.com")
FORGOTTEN = USERS[0]
EACH = 5
START = 1_767_225_600_000
TIMEOUT_S = 240


def events(user: str, first: int, count: int) -> list[dict[str, Any]]:
    # Only user_id is pseudonymised: the other ids must not be derived from the raw one.
    number = USERS.index(user)
    return [
        {
            "event_id": f"e{number}-{n}",
            "user_id": user,
            "session_id": f"s{number}",
            "item_id": f"i{n % 4}",
            "event_type": "view",
            "event_ts": START + n * 1000,
        }
        for n in range(first, first + count)
    ]


def test_forget_removes_a_pseudonymised_user_from_delta_redis_and_flink_state(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis
    from deltalake import DeltaTable

    monkeypatch.setenv("RTREC_PSEUDONYM_KEY", KEY)  # the CLI and the producer read it
    base = tmp_path_factory.mktemp("privacy")
    _, isolated = stack.isolated("privacy")
    args = [
        *isolated,
        *("--set", "privacy.pseudonymise=true"),
        *("--set", f"lake.root={base / 'lake'}"),
        *("--set", f"lake.checkpoint_root={base / 'checkpoints' / 'spark'}"),
        *("--set", f"flink.checkpoint_dir={base / 'checkpoints' / 'flink'}"),
        *("--set", "flink.consumer_group=rtrec-privacy-test"),
    ]
    settings = load_settings("local", args[3::2])
    topics, bootstrap = settings.kafka.topics, settings.kafka.bootstrap_servers
    hidden = {user: pseudonym(KEY.encode(), user) for user in USERS}
    forgotten = hidden[FORGOTTEN]

    produce(settings, [e for user in USERS for e in events(user, 0, EACH)], source="test")
    # Nothing raw reached Kafka: keys and payloads carry pseudonyms only.
    sent = list(consume_all(bootstrap, topics.events, idle_s=1.0))
    assert len(sent) == EACH * len(USERS)
    assert {m.key().decode() for m in sent} == set(hidden.values())
    assert not [m for m in sent for user in USERS if user.encode() in m.value()]

    logs = base / "logs"
    jobs = [
        start_job("features", flink_job_command(settings, "behaviour_features", args), logs / "f"),
        start_job("online store", app_job_command(settings, "online_store", args), logs / "s"),
    ]
    client = redis.Redis.from_url(settings.redis.url, decode_responses=True)

    def redis_totals(user: str) -> float | None:
        value = client.hget(store_key("user", user, TOTALS_GROUP), "events")
        return None if value is None else float(value)

    try:
        wait_for(
            lambda: all(redis_totals(p) == EACH for p in hidden.values()),
            "every user's totals in Redis",
            jobs,
            TIMEOUT_S,
        )
        ingest = spark_job_command(
            settings, "ingest", [*args, "--set", "lake.ingest_trigger=available_now"]
        )
        run_to_completion("ingest", ingest, logs / "ingest.log", timeout_s=TIMEOUT_S)
        bronze = settings.lake.table_path(*BRONZE_EVENTS)
        before = DeltaTable(bronze).to_pyarrow_table(columns=["user_id"]).column(0).to_pylist()
        assert sorted(before) == sorted(p for p in hidden.values() for _ in range(EACH))

        forget = subprocess.run(
            [
                *(str(settings.root / ".venvs/app/bin/rtrec"), "privacy", "forget", FORGOTTEN),
                *("--log-dir", str(logs / "privacy"), *args),
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            env={**os.environ, "RTREC_PSEUDONYM_KEY": KEY},
            check=False,
        )
        assert forget.returncode == 0, forget.stderr + forget.stdout
        assert f"forgot user {forgotten}" in forget.stdout
        assert FORGOTTEN not in forget.stdout + forget.stderr

        # Delta: the user's rows are gone from the current version, everybody else's stay.
        after = DeltaTable(bronze).to_pyarrow_table(columns=["user_id"]).column(0).to_pylist()
        assert forgotten not in after and len(after) == EACH * (len(USERS) - 1)
        # Redis: no key of the user, at once; the other users are untouched.
        assert client.keys(f"rtrec:user:{forgotten}:*") == []
        assert all(redis_totals(hidden[u]) == EACH for u in USERS[1:])

        # Flink: the job deleted the user's totals (a tombstone on the topic) ...
        def tombstoned() -> bool:
            return any(
                m.value() is None
                and json.loads(m.key()) == {ENTITY_ID: forgotten, FEATURE_GROUP: TOTALS_GROUP}
                for m in consume_all(bootstrap, topics.user_features, idle_s=1.0)
            )

        wait_for(tombstoned, "a tombstone of the user's totals", jobs, TIMEOUT_S)
        assert client.keys(f"rtrec:user:{forgotten}:*") == []  # the sync deleted, not wrote
        # ... and its state: the user's next event counts from one.
        produce(settings, events(FORGOTTEN, EACH, 1), source="test")
        wait_for(
            lambda: redis_totals(forgotten) == 1.0, "the returning user's new totals", jobs, 120
        )
        totals = latest_totals(bootstrap, topics.user_features)
        assert {p: t["events"] for p, t in totals.items()} == {
            **{hidden[u]: float(EACH) for u in USERS[1:]},
            forgotten: 1.0,
        }
    finally:
        for job in jobs:
            job.stop()
        client.close()

    # The audit row: the pseudonym, who and where, what each store lost; never the raw id.
    audit = DeltaTable(settings.lake.table_path(*AUDIT_TABLE)).to_pyarrow_table().to_pylist()
    assert len(audit) == 1
    row = audit[0]
    assert row["pseudonym"] == forgotten and row["requested_by"] and row["host"]
    assert row["requested_at"] <= row["completed_at"]
    assert row["delta_rows_deleted"] == EACH
    assert {t["table"]: t["rows_deleted"] for t in json.loads(row["delta_tables"])} == {
        "bronze.events": EACH
    }
    # The command deletes right after the forget record, before the job's tombstones arrive.
    assert f"rtrec:user:{forgotten}:{TOTALS_GROUP}" in row["redis_keys_deleted"]
    assert all(k.startswith(f"rtrec:user:{forgotten}:") for k in row["redis_keys_deleted"])
    assert row["forget_topic"] == topics.forget
    assert "alice" not in json.dumps(row, default=str)
    assert not list(Path(base / "lake").rglob("*alice*"))
