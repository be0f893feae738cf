"""The model versions a running job serves, swapped without stopping it.

``LiveModels`` keeps one loaded version per alias (``champion``, ``challenger``) and the one
before it (for rollback). ``want(alias, version)`` starts loading a version in a background
thread; the hot path calls ``settle()`` between records, which swaps every finished load in at
once (a reference assignment: a record is scored wholly by the old or wholly by the new model)
and reports what happened. A load that fails leaves the current model serving. ``AliasPoller``
asks the registry for the aliases every few seconds, also off the hot path: the safety net for a
``model_control`` record that never arrives.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from rtrec.registry.mlflow_registry import load_pyfunc

M = TypeVar("M")
AliasReader = Callable[[Iterable[str]], dict[str, str]]  # aliases -> {alias: version}
LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loaded(Generic[M]):
    version: str
    model: M
    load_seconds: float


@dataclass(frozen=True)
class Swap:
    """The outcome of one load: swapped in (``error`` empty) or failed, current kept."""

    alias: str
    version: str
    previous: str | None  # the version it replaced, or the one still serving after a failure
    error: str = ""
    load_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.error


class LiveModels(Generic[M]):
    """Not thread-safe by design: ``want``, ``settle`` and the readers run on the job's one
    processing thread; only ``load`` runs elsewhere."""

    def __init__(self, load: Callable[[str], M]) -> None:
        self._load = load
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtrec-model-load")
        self._active: dict[str, Loaded[M]] = {}
        self._previous: dict[str, Loaded[M]] = {}
        self._pending: dict[str, tuple[str, Future[Loaded[M]]]] = {}

    def active(self, alias: str) -> Loaded[M] | None:
        return self._active.get(alias)

    def previous(self, alias: str) -> Loaded[M] | None:
        return self._previous.get(alias)

    def versions(self) -> dict[str, str]:
        return {alias: loaded.version for alias, loaded in self._active.items()}

    def want(self, alias: str, version: str) -> None:
        """Serve ``version`` under ``alias`` once it is loaded (a no-op when it already is or
        is on its way). A version loaded under another alias is reused, not reloaded."""
        pending = self._pending.get(alias)
        if pending is not None and pending[0] == version:
            return
        current = self._active.get(alias)
        if current is not None and current.version == version and pending is None:
            return
        known = self._known(version)
        future: Future[Loaded[M]]
        if known is not None:
            future = Future()
            future.set_result(known)
        else:
            future = self._executor.submit(self._timed_load, version)
        # A newer wish replaces an older pending one; the older load, if running, is discarded.
        self._pending[alias] = (version, future)

    def settle(self) -> list[Swap]:
        """Swap in every finished load; what happened, for logs and metrics."""
        swaps: list[Swap] = []
        for alias, (version, future) in list(self._pending.items()):
            if not future.done():
                continue
            del self._pending[alias]
            current = self._active.get(alias)
            before = current.version if current else None
            error = future.exception()
            if error is not None:
                LOG.error("loading %s version %s failed; %s keeps serving", alias, version, before)
                swaps.append(Swap(alias, version, before, f"{type(error).__name__}: {error}"))
                continue
            loaded = future.result()
            if current is not None and current.version == version:
                continue  # a wish for what already serves (it cancelled a pending one)
            if current is not None:
                self._previous[alias] = current
            self._active[alias] = loaded
            LOG.info("%s now serves version %s (was %s)", alias, version, before)
            swaps.append(Swap(alias, version, before, load_seconds=loaded.load_seconds))
        return swaps

    def wait(self, timeout_s: float) -> list[Swap]:
        """Block until every pending load has finished (at start-up), then ``settle``."""
        deadline = time.monotonic() + timeout_s
        for _, future in list(self._pending.values()):
            try:
                future.exception(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                break
        return self.settle()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _known(self, version: str) -> Loaded[M] | None:
        for loaded in (*self._active.values(), *self._previous.values()):
            if loaded.version == version:
                return loaded
        return None

    def _timed_load(self, version: str) -> Loaded[M]:
        started = time.monotonic()
        model = self._load(version)
        return Loaded(version, model, time.monotonic() - started)


class AliasPoller:
    """Reads the registry's alias versions every ``interval_s`` in a daemon thread; ``latest()``
    returns the last answer without waiting. A failed read keeps the previous answer."""

    def __init__(
        self,
        read: Callable[[Iterable[str]], dict[str, str]],
        aliases: Iterable[str],
        interval_s: float,
    ) -> None:
        self._read, self._aliases, self._interval_s = read, tuple(aliases), interval_s
        self._latest: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtrec-alias-poll", daemon=True)

    def start(self) -> AliasPoller:
        self._thread.start()
        return self

    def latest(self) -> dict[str, str]:
        with self._lock:
            return dict(self._latest)

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                answer = self._read(self._aliases)
            except Exception as exc:  # the registry being away must not stop the job
                LOG.warning("polling the model registry failed: %s", exc)
            else:
                with self._lock:
                    self._latest = answer
            self._stop.wait(self._interval_s)


def registry_loader(tracking_uri: str, model_name: str) -> Callable[[str], Any]:
    """Load a registered version's Python model (``models:/<name>/<version>``)."""

    def load(version: str) -> Any:
        import mlflow

        mlflow.set_tracking_uri(tracking_uri)
        return load_pyfunc(f"models:/{model_name}/{version}").unwrap_python_model()

    return load


def registry_aliases(
    tracking_uri: str, model_name: str
) -> Callable[[Iterable[str]], dict[str, str]]:
    """Read the versions the aliases point at (an alias not set is left out)."""

    def read(aliases: Iterable[str]) -> dict[str, str]:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        client = MlflowClient(tracking_uri)
        versions = {}
        for alias in aliases:
            try:
                versions[alias] = str(client.get_model_version_by_alias(model_name, alias).version)
            except MlflowException:
                continue
        return versions

    return read
