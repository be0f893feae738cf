"""Hot-swap bookkeeping (rtrec.registry.live) with a loader the test controls: loads happen off
the caller's thread, swaps only in settle(), failures keep the current model serving."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import pytest

from rtrec.registry.live import AliasPoller, LiveModels

pytestmark = pytest.mark.unit


class Loader:
    """Loads "model-<version>" once released; version "bad" fails."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: list[str] = []
        self.threads: set[str] = set()

    def __call__(self, version: str) -> str:
        self.calls.append(version)
        self.threads.add(threading.current_thread().name)
        if not self.release.wait(5):
            raise TimeoutError("not released")
        if version == "bad":
            raise FileNotFoundError("artifact sasrec.pt missing")
        return f"model-{version}"


def test_a_swap_happens_off_the_hot_path_and_keeps_the_previous() -> None:
    loader = Loader()
    live: LiveModels[str] = LiveModels(loader)
    loader.release.set()
    live.want("champion", "1")
    (swap,) = live.wait(5)
    assert swap.ok and swap.previous is None and live.versions() == {"champion": "1"}
    assert threading.current_thread().name not in loader.threads

    loader.release.clear()
    live.want("champion", "2")
    live.want("champion", "2")  # a repeated wish (record and poll) loads once
    assert live.settle() == []  # still loading: version 1 keeps serving
    active = live.active("champion")
    assert active is not None and active.model == "model-1"
    loader.release.set()
    (swap,) = live.wait(5)
    assert (swap.version, swap.previous) == ("2", "1") and swap.ok
    current, previous = live.active("champion"), live.previous("champion")
    assert current is not None and current.model == "model-2"
    assert previous is not None and previous.model == "model-1"
    assert loader.calls == ["1", "2"]

    # A rollback to the previous version and a promotion of a loaded version reuse the model.
    live.want("champion", "1")
    live.want("challenger", "2")
    assert {s.version for s in live.settle()} == {"1", "2"}
    assert live.versions() == {"champion": "1", "challenger": "2"}
    assert loader.calls == ["1", "2"]
    live.close()


def test_a_failed_load_keeps_the_current_model_and_says_why() -> None:
    loader = Loader()
    loader.release.set()
    live: LiveModels[str] = LiveModels(loader)
    live.want("champion", "1")
    live.wait(5)
    live.want("champion", "bad")
    (swap,) = live.wait(5)
    assert not swap.ok and swap.previous == "1"
    assert "FileNotFoundError" in swap.error and "sasrec.pt" in swap.error
    assert live.versions() == {"champion": "1"}
    # The same version can be asked for again (say, once the artifact is fixed).
    live.want("champion", "bad")
    assert not live.wait(5)[0].ok
    live.close()


def test_the_alias_poller_keeps_its_last_good_answer() -> None:
    answers: list[dict[str, str] | Exception] = [
        {"champion": "1"},
        ConnectionError("registry down"),
        {"champion": "2", "challenger": "3"},
    ]
    seen: list[tuple[str, ...]] = []

    def read(aliases: Iterable[str]) -> dict[str, str]:
        seen.append(tuple(aliases))
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    poller = AliasPoller(read, ["champion", "challenger"], interval_s=0.05).start()
    deadline = time.monotonic() + 5
    history = []
    while time.monotonic() < deadline and poller.latest() != answers[2]:
        history.append(poller.latest())
        time.sleep(0.005)
    poller.stop()
    assert poller.latest() == answers[2]
    # Once answered, never empty again: the failed read in between kept version 1.
    first = history.index({"champion": "1"})
    assert all(h for h in history[first:])
    assert seen[0] == ("champion", "challenger")
