"""Promotion rules as code: the gate that lets a newly trained version become ``challenger``,
and the ``rtrec.model_control`` record every alias move publishes (pure; no MLflow here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

GATE_METRIC = "all_ndcg_at_10"  # rtrec.training.metrics.Evaluation.as_dict() key


@dataclass(frozen=True)
class Scored:
    """A version's metrics and the split they were measured on (e.g. the gold table's Delta
    version and the split time): only scores on one split compare."""

    metrics: Mapping[str, float]
    split: str


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str


def gate(
    candidate: Scored, champion: Scored | None, metric: str = GATE_METRIC, force: bool = False
) -> GateDecision:
    """Whether ``candidate`` may become challenger: it must beat the champion on ``metric`` on
    the same split, unless ``force``; with no champion yet it passes."""
    if force:
        return GateDecision(True, "forced")
    if metric not in candidate.metrics:
        return GateDecision(False, f"the candidate has no {metric}")
    if champion is None:
        return GateDecision(True, "no champion yet")
    if champion.split != candidate.split:
        return GateDecision(
            False,
            f"the champion was measured on split {champion.split!r}, the candidate on "
            f"{candidate.split!r}: score the champion on the candidate's split first",
        )
    if metric not in champion.metrics:
        return GateDecision(False, f"the champion has no {metric}")
    new, old = candidate.metrics[metric], champion.metrics[metric]
    if new > old:
        return GateDecision(True, f"{metric} {new:.4f} beats the champion's {old:.4f}")
    return GateDecision(False, f"{metric} {new:.4f} does not beat the champion's {old:.4f}")


def control_record(model: str, alias: str, version: str, ts_ms: int) -> dict[str, object]:
    """The ``rtrec.model_control`` record of an alias move (keyed by model): scoring jobs
    swap to ``uri`` when they read it."""
    return {
        "model": model,
        "alias": alias,
        "version": version,
        "uri": f"models:/{model}/{version}",
        "ts": ts_ms,
    }
