"""How upsert-topic records become Redis writes (pure mapping; Redis itself in integration)."""

import json

import pytest

from rtrec.config import load_settings
from rtrec.serving.online_store import Write, feature_write, writers

pytestmark = pytest.mark.unit


def test_a_feature_record_becomes_a_hash_with_its_window() -> None:
    key = json.dumps({"entity_id": "u1", "feature_group": "counts_10m"}).encode()
    value = json.dumps(
        {
            "entity_id": "u1",
            "feature_group": "counts_10m",
            "start_ms": 60_000,
            "end_ms": 660_000,
            "features": {"events": 3.0, "view_count": 2},
        }
    ).encode()
    assert feature_write("user", key, value) == Write(
        "rtrec:user:u1:counts_10m",
        fields={"events": "3.0", "view_count": "2.0", "start_ms": "60000", "end_ms": "660000"},
    )


def test_a_tombstone_deletes_the_key() -> None:
    key = json.dumps({"entity_id": "i9", "feature_group": "counts_1h"}).encode()
    assert feature_write("item", key, None) == Write("rtrec:item:i9:counts_1h")


def test_ranked_lists_are_stored_as_json_under_the_raw_id() -> None:
    settings = load_settings("local", environ={})
    neighbours = writers(settings)[settings.kafka.topics.item_neighbours]
    ranked = [{"item_id": "i2", "score": 0.5}]
    value = json.dumps({"item_id": "i1", "neighbours": ranked}).encode()
    assert neighbours(b"i1", value) == Write("rtrec:item:i1:neighbours", text=json.dumps(ranked))
    scores = writers(settings)[settings.kafka.topics.cf_scores]
    assert scores(b"u1", None) == Write("rtrec:user:u1:cf")
    assert set(writers(settings)) == {
        settings.kafka.topics.user_features,
        settings.kafka.topics.item_features,
        settings.kafka.topics.item_neighbours,
        settings.kafka.topics.cf_scores,
        settings.kafka.topics.recommendations,
        settings.kafka.topics.ab_metrics,
        settings.kafka.topics.bought_together,
    }


def test_a_recommendation_record_is_stored_whole() -> None:
    settings = load_settings("local", environ={})
    write = writers(settings)[settings.kafka.topics.recommendations]
    record = {"user_id": "u1", "model_version": "3", "items": [{"item_id": "i2", "reason": "x"}]}
    value = json.dumps(record).encode()
    assert write(b"u1", value) == Write("rtrec:user:u1:recommendations", text=value.decode())
    assert write(b"u1", None) == Write("rtrec:user:u1:recommendations")


def test_ab_windows_accumulate_as_fields_of_one_hash_per_version_and_arm() -> None:
    settings = load_settings("local", environ={})
    write = writers(settings)[settings.kafka.topics.ab_metrics]
    key = json.dumps({"start_ms": 60000, "model_version": "4", "arm": "champion"}).encode()
    value = json.dumps({"impressions": 10, "clicks": 2, "ctr": 0.2}).encode()
    assert write(key, value) == Write(
        "rtrec:ab:4:champion", fields={"60000": value.decode()}, replace=False
    )
    assert write(key, None) == Write("rtrec:ab:4:champion", replace=False)  # changes nothing
