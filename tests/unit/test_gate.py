"""The promotion gate and the model_control record (rtrec.registry.gate)."""

import pytest

from rtrec.registry.gate import Scored, control_record, gate

pytestmark = pytest.mark.unit


def scored(ndcg: float, split: str = "gold@7/2026-02-01") -> Scored:
    return Scored({"all_ndcg_at_10": ndcg, "all_hr_at_10": 0.5}, split)


def test_the_challenger_must_beat_the_champion_on_the_same_split() -> None:
    assert gate(scored(0.21), scored(0.20)).passed
    tie = gate(scored(0.20), scored(0.20))
    assert not tie.passed and "does not beat" in tie.reason
    assert not gate(scored(0.19), scored(0.20)).passed
    other_split = gate(scored(0.30), scored(0.20, split="gold@6/2026-01-20"))
    assert not other_split.passed
    assert "gold@6/2026-01-20" in other_split.reason and "gold@7/2026-02-01" in other_split.reason


def test_force_no_champion_and_missing_metrics() -> None:
    assert gate(scored(0.01), scored(0.20), force=True) == gate(scored(0.0), None, force=True)
    assert gate(scored(0.01), None).reason == "no champion yet"
    missing = gate(Scored({}, "s"), scored(0.2))
    assert not missing.passed and "all_ndcg_at_10" in missing.reason
    assert not gate(scored(0.3), Scored({}, "gold@7/2026-02-01")).passed


def test_control_record() -> None:
    assert control_record("rtrec-recommender", "champion", "3", 1_700_000_000_000) == {
        "model": "rtrec-recommender",
        "alias": "champion",
        "version": "3",
        "uri": "models:/rtrec-recommender/3",
        "ts": 1_700_000_000_000,
    }
