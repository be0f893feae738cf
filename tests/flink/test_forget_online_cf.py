"""The online CF job forgets a user (docs/privacy.md): after a ForgetUser the user has no
scores (the pure core, without the forget, gives them some), and everybody else ends where the
pure core says."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from conftest import cf_payload

from rtrec.cf import CfEvent, CfParams, compute_reference
from rtrec.config import load_settings
from rtrec.privacy import ForgetUser

pytestmark = [pytest.mark.component, pytest.mark.flink]

START = 1_700_000_000_000
MARKER = "forget-marker"  # the item of the event that stands for the forget request


def _events(seed: int, count: int) -> list[CfEvent]:
    rng = random.Random(seed)
    kinds = ("view", "view", "click", "add_to_cart", "purchase")
    events = []
    for n in range(count):
        user = f"u{rng.randrange(8)}"
        item, kind = f"i{rng.randrange(12)}", rng.choice(kinds)
        events.append(CfEvent(f"e{n}", user, item, kind, START + n * 60_000))
    return events


def test_a_forgotten_user_ends_with_no_scores_and_the_others_are_untouched(
    tmp_path: Path,
) -> None:
    from pyflink.common import Types

    from rtrec.streaming.kafka import raw_file_ddl
    from rtrec.streaming.online_cf import build_online_cf_pipeline, read_valid_events
    from rtrec.streaming.stream_env import create_stream_env

    settings = load_settings("local", [f"flink.checkpoint_dir={tmp_path / 'checkpoints'}"])
    params = CfParams(history_size=10, neighbours=5, candidates=8)
    events = _events(11, 400)
    forgotten = "u3"
    marker = CfEvent("e-forget", forgotten, MARKER, "view", START + len(events) * 60_000)
    reference = compute_reference(events, params)
    assert forgotten in reference.scores and len(reference.scores) == 8

    lines = [cf_payload(e) for e in [*events, marker]]
    (tmp_path / "events.txt").write_bytes(b"\n".join(lines) + b"\n")
    _, t_env = create_stream_env(settings, "rtrec-test-forget-cf")
    t_env.execute_sql(raw_file_ddl("raw_file", tmp_path / "events.txt"))
    # In the job forget records come from their own topic; here one rides in the event file,
    # so it reaches the user's state after the user's events, in file order. (A lambda: the
    # workers cannot import this module, so a function of it could not be unpickled there.)
    requests = read_valid_events(t_env, "raw_file").map(
        lambda e: ForgetUser(e.user_id) if e.item_id == MARKER else e,
        output_type=Types.PICKLED_BYTE_ARRAY(),
    )
    streams = build_online_cf_pipeline(
        requests, params, flush_interval_ms=3_600_000, idle_flush_ms=None
    )
    scores = streams.scores.map(lambda s: (s.user, s.scores))
    latest: dict[str, Any] = {}
    with scores.execute_and_collect() as results:
        for user, ranked in results:
            latest[user] = ranked

    # No scores left: either none was ever sent (a bounded input flushes at its end, after the
    # forget) or the last is the empty list, the topic's "no candidates" the sync deletes.
    assert latest.get(forgotten, ()) == ()
    others = {u: r for u, r in latest.items() if u != forgotten}
    assert others.keys() == reference.scores.keys() - {forgotten}
    for user, ranked in others.items():
        want = reference.scores[user]
        assert [k for k, _ in ranked] == [k for k, _ in want], user
        assert [v for _, v in ranked] == pytest.approx([v for _, v in want], rel=1e-9)


def test_the_scoring_job_writes_a_forgotten_users_list_as_a_delete() -> None:
    """The scoring job passes a ForgetUser on after dropping the user's state; its row for the
    upsert topic is a DELETE of the user's key, which the sink writes as a tombstone."""
    from pyflink.common.types import RowKind

    from rtrec.streaming.scoring import recommendation_row

    row = recommendation_row(ForgetUser("p_0123"))
    assert row.get_row_kind() == RowKind.DELETE
    assert row[0] == "p_0123" and all(value is None for value in row[1:])
