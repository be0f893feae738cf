"""Replay adapters: each format's mapping on tiny inline files, bad rows with their line number,
event-time order (in memory and external), and the real OTTO fixture parsed in full."""

from __future__ import annotations

import argparse
import gzip
from collections import Counter
from pathlib import Path

import pytest

from rtrec.cli import produce as produce_cli
from rtrec.config import project_root
from rtrec.errors import RtrecError
from rtrec.schema import encode, validate
from rtrec.sources import BadRow, Event
from rtrec.sources.replay import FORMATS, GIVE_UP_AFTER_BAD_ROWS, read, replay

pytestmark = pytest.mark.unit

# Real OTTO sessions (CC BY 4.0, "OTTO Recommender Systems Dataset, otto-de/recsys-dataset"),
# kept next to the repository in ../shared (see its README).
OTTO_SAMPLE = project_root().parent / "shared" / "data" / "otto-sample" / "sessions.jsonl"


def write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def split(records: list[Event | BadRow]) -> tuple[list[Event], list[BadRow]]:
    events = [r for r in records if isinstance(r, dict)]
    return events, [r for r in records if isinstance(r, BadRow)]


def brief(event: Event) -> tuple[object, ...]:
    keys = ("user_id", "session_id", "item_id", "event_type", "event_ts")
    return tuple(event[k] for k in keys)


def assert_valid(events: list[Event]) -> None:
    for event in events:
        assert validate(encode(event)).record == event


def test_otto_fixture_is_parsed_in_full_in_event_time_order() -> None:
    records = list(replay("otto", OTTO_SAMPLE))
    events, bad = split(records)
    assert bad == []
    assert len(events) == 862
    assert Counter(e["event_type"] for e in events) == {
        "click": 800,
        "add_to_cart": 52,
        "purchase": 10,
    }
    timestamps = [e["event_ts"] for e in events]
    assert timestamps == sorted(timestamps)
    assert len({e["event_id"] for e in events}) == 862
    assert all(e["event_id"].startswith(f"otto:{e['session_id']}:") for e in events)
    assert_valid(events)


def test_otto(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sessions.jsonl",
        [
            '{"session": 5, "events": [{"aid": 10, "ts": 1659304800000, "type": "clicks"},'
            ' {"aid": 11, "ts": 1659304900000, "type": "carts"}]}',
            '{"session": 6, "events": [{"aid": 10, "ts": 1659304850000, "type": "orders"}]}',
            '{"session": 7, "events": [{"aid": 12, "ts": 1659304860000, "type": "wishlist"}]}',
            "not json",
        ],
    )
    events, bad = split(list(replay("otto", path)))
    assert [brief(e) for e in events] == [
        ("5", "5", "10", "click", 1659304800000),
        ("6", "6", "10", "purchase", 1659304850000),
        ("5", "5", "11", "add_to_cart", 1659304900000),
    ]
    assert [e["event_id"] for e in events] == ["otto:5:0", "otto:6:0", "otto:5:1"]
    assert [(b.line_number, b.reason) for b in bad] == [
        (3, "event 0: unknown type 'wishlist'"),
        (4, bad[1].reason),
    ]
    assert "Expecting value" in bad[1].reason
    assert bad[1].raw == "not json"


def test_taobao(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "UserBehavior.csv",
        [
            "1,2268318,2520377,pv,1511544070",
            "1,2333346,2520377,fav,1511561733",
            "1,2576651,149192,cart,1511572885",
            "100,1603476,2951233,buy,1511579908",
            "1,4365585,2520377,pv,yesterday",
        ],
    )
    events, bad = split(list(read("taobao", path)))
    assert [brief(e) for e in events] == [
        ("1", "1:2017-11-24", "2268318", "view", 1511544070000),
        ("1", "1:2017-11-24", "2333346", "click", 1511561733000),
        ("1", "1:2017-11-25", "2576651", "add_to_cart", 1511572885000),
        ("100", "100:2017-11-25", "1603476", "purchase", 1511579908000),
    ]
    assert events[0]["category_id"] == "2520377"
    assert events[0]["event_id"] == "taobao:UserBehavior.csv:1"
    assert bad == [
        BadRow(5, "1,4365585,2520377,pv,yesterday", "timestamp is not an integer: 'yesterday'")
    ]
    assert_valid(events)


def test_retailrocket(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "events.csv",
        [
            "timestamp,visitorid,event,itemid,transactionid",
            "1433221332117,257597,view,355908,",
            "1433224214164,992329,addtocart,248676,",
            "1433193500981,121688,transaction,15335,11117",
            "1433223236124,257597,click,355908,",
            "1433223236124,257597,view",
        ],
    )
    events, bad = split(list(read("retailrocket", path)))
    assert [brief(e) for e in events] == [
        ("257597", "257597:2015-06-02", "355908", "view", 1433221332117),
        ("992329", "992329:2015-06-02", "248676", "add_to_cart", 1433224214164),
        ("121688", "121688:2015-06-01", "15335", "purchase", 1433193500981),
    ]
    assert events[0]["event_id"] == "retailrocket:events.csv:2"  # line 1 is the header
    assert [(b.line_number, b.reason) for b in bad] == [
        (5, "unknown event 'click' (known: view, addtocart, transaction)"),
        (6, "expected 5 columns, got 3"),
    ]


def test_rees46(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "2019-Nov.csv",
        [
            FORMATS["rees46"].header or "",
            "2019-11-01 00:00:00 UTC,view,1001,2053,electronics.smartphone,acme,489.07,501,sess-a",
            "2019-11-01 00:00:05 UTC,cart,1001,2053,electronics.smartphone,acme,489.07,501,sess-a",
            "2019-11-01 00:01:00 UTC,remove_from_cart,1001,2053,,,489.07,501,sess-a",
            "2019-11-01 00:02:00 UTC,purchase,1002,2054,,,12.5,502,",
            "2019-11-01 00:03:00 UTC,view,1003,2054,,,-5.0,502,sess-b",
            "2019-11-01T00:04:00,view,1003,2054,,,5.0,502,sess-b",
        ],
    )
    events, bad = split(list(read("rees46", path)))
    assert [brief(e) for e in events] == [
        ("501", "sess-a", "1001", "view", 1572566400000),
        ("501", "sess-a", "1001", "add_to_cart", 1572566405000),
        ("501", "sess-a", "1001", "remove_from_cart", 1572566460000),
        ("502", "502:2019-11-01", "1002", "purchase", 1572566520000),  # no user_session
    ]
    assert (events[0]["category_id"], events[0]["price"]) == ("2053", 489.07)
    assert [b.line_number for b in bad] == [6, 7]
    assert "'price' is -5.0, below the minimum" in bad[0].reason
    assert "YYYY-MM-DD HH:MM:SS UTC" in bad[1].reason


def test_yoochoose_clicks_and_buys(tmp_path: Path) -> None:
    clicks = write(
        tmp_path,
        "yoochoose-clicks.dat",
        [
            "1,2014-04-07T10:51:09.277Z,214536502,0",
            "1,2014-04-07T10:54:09.868Z,214536500,S",
            "2,2014-04-07T13:56:37.614Z,214662742,3",
            "2,April,214662742,3",
        ],
    )
    events, bad = split(list(read("yoochoose", clicks)))
    assert [(*brief(e), e["category_id"]) for e in events] == [
        ("1", "1", "214536502", "click", 1396867869277, None),  # "0" = unknown category
        ("1", "1", "214536500", "click", 1396868049868, "S"),  # "S" = special offer
        ("2", "2", "214662742", "click", 1396878997614, "3"),
    ]
    assert [b.line_number for b in bad] == [4]
    buys = write(
        tmp_path,
        "yoochoose-buys.dat",
        [
            "420374,2014-04-06T18:44:58.314Z,214537888,12462,1",
            "420374,2014-04-06T18:44:58.325Z,214537850,0,0",
        ],
    )
    bought, bad = split(list(read("yoochoose", buys)))
    assert bad == []
    assert [(e["event_type"], e["price"], e["quantity"]) for e in bought] == [
        ("purchase", 12462.0, 1),
        ("purchase", None, None),  # 0 means unknown in the buys file
    ]
    assert bought[0]["event_ts"] == 1396809898314


def test_movielens_csv_and_dat(tmp_path: Path) -> None:
    csv = write(
        tmp_path,
        "ratings.csv",
        [
            "userId,movieId,rating,timestamp",
            "1,1,4.0,964982703",
            "1,3,3.5,964981247",
            "2,6,five,964982224",
        ],
    )
    events, bad = split(list(read("movielens", csv)))
    assert [brief(e) for e in events] == [
        ("1", "1:2000-07-30", "1", "purchase", 964982703000),  # rating >= 4
        ("1", "1:2000-07-30", "3", "view", 964981247000),
    ]
    assert [(b.line_number, b.raw) for b in bad] == [(4, "2,6,five,964982224")]
    dat = write(tmp_path, "ratings.dat", ["1::1193::5::978300760", "1::661::3::978302109"])
    events, bad = split(list(read("movielens", dat)))
    assert bad == []
    assert [(e["item_id"], e["event_type"]) for e in events] == [
        ("1193", "purchase"),
        ("661", "view"),
    ]


def test_gzip_blank_lines_and_bad_utf8(tmp_path: Path) -> None:
    path = tmp_path / "UserBehavior.csv.gz"
    with gzip.open(path, "wb") as out:
        out.write(b"1,2,3,pv,1511544070\n\n1,2,3,\xff\xfe,1511544071\n1,2,3,buy,1511544072\n")
    events, bad = split(list(read("taobao", path)))
    assert [e["event_type"] for e in events] == ["view", "purchase"]
    assert events[0]["event_id"] == "taobao:UserBehavior.csv:1"  # no .gz: same ids as unpacked
    assert [(b.line_number, b.reason) for b in bad] == [(3, "not valid UTF-8")]


def test_replay_sorts_by_event_time_in_memory_or_by_external_merge(tmp_path: Path) -> None:
    lines = [f"{u},{i},7,pv,{1511544000 + (i * 7919) % 1000}" for u in range(5) for i in range(60)]
    lines.insert(10, "broken")
    path = write(tmp_path, "UserBehavior.csv", lines)
    in_memory = list(replay("taobao", path))
    external = list(replay("taobao", path, buffer_events=7))
    assert in_memory == external
    assert isinstance(in_memory[0], BadRow)  # bad rows come out while the file is read
    events, _ = split(in_memory)
    assert len(events) == 300
    keys = [(e["event_ts"], int(e["event_id"].rsplit(":", 1)[1])) for e in events]
    assert keys == sorted(keys)  # by time; ties keep file order


def test_limit_stops_reading(tmp_path: Path) -> None:
    path = write(tmp_path, "UserBehavior.csv", [f"1,{i},7,pv,{1511544000 - i}" for i in range(50)])
    events, _ = split(list(replay("taobao", path, limit=10)))
    assert sorted(e["item_id"] for e in events) == [str(i) for i in range(10)]


def test_a_file_in_the_wrong_format_stops_the_replay(tmp_path: Path) -> None:
    otto = write(tmp_path, "sessions.jsonl", ['{"session": 1, "events": []}'] * 30)
    with pytest.raises(RtrecError, match="line 1 is not the retailrocket header"):
        list(read("retailrocket", otto))
    lines = ["1,2,3,pv,1511544070"] * (GIVE_UP_AFTER_BAD_ROWS + 5)
    with pytest.raises(RtrecError, match="is --format right"):
        list(read("otto", write(tmp_path, "UserBehavior.csv", lines)))
    with pytest.raises(RtrecError, match=r"missing\.csv"):
        list(read("taobao", tmp_path / "missing.csv"))


def test_cli_replay_arguments(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    produce_cli.register(parser.add_subparsers())
    args = parser.parse_args(
        ["produce", "replay", "--format", "otto", "--path", str(tmp_path / "nope.jsonl")]
    )
    assert args.speed == 0.0
    with pytest.raises(RtrecError, match=r"nope\.jsonl: no such file"):
        args.func(args)
    base = ["produce", "replay", "--path", "x"]
    assert parser.parse_args([*base, "--format", "otto", "--speed", "max"]).speed == 0.0
    assert parser.parse_args([*base, "--format", "otto", "--speed", "60"]).speed == 60.0
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--format", "parquet"])
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--format", "otto", "--speed", "-1"])
