"""The notebooks' figures (matplotlib). Each function draws one figure from a table of
``rtrec.analysis.stream`` or ``rtrec.analysis.models`` and returns it; in a notebook the inline
backend shows it."""

from __future__ import annotations

from typing import Any

from rtrec.analysis.models import LATENCY_S, MODEL
from rtrec.analysis.stream import DURATION_S, EVENTS, OF_FIRST, SESSIONS
from rtrec.features.definitions import CONVERSION, WINDOW_START
from rtrec.schema.events import MODEL_VERSION
from rtrec.scoring.ab import ARM, CTR, IMPRESSIONS


def _figure(columns: int = 1, width: float = 7.0) -> tuple[Any, Any]:
    import matplotlib.pyplot as plt

    return plt.subplots(1, columns, figsize=(width, 3.2), squeeze=False)


def event_mix(mix: Any) -> Any:
    figure, axes = _figure()
    axes[0][0].bar(mix.index.astype(str), mix[EVENTS])
    axes[0][0].set(title="events per type", ylabel="events")
    axes[0][0].tick_params(axis="x", labelrotation=30)
    figure.tight_layout()
    return figure


def long_tails(users: Any, items: Any) -> Any:
    """Rank-frequency of events per user and per item, log-log: a straight, steep line is a
    heavy head and a long tail."""
    figure, axes = _figure()
    axis = axes[0][0]
    for name, counts in (("users", users), ("items", items)):
        ordered = counts.sort_values(ascending=False).to_numpy()
        axis.loglog(range(1, len(ordered) + 1), ordered, marker=".", linestyle="", label=name)
    axis.set(title="activity by rank (long tail)", xlabel="rank", ylabel="events")
    axis.legend()
    figure.tight_layout()
    return figure


def session_lengths(sessions: Any) -> Any:
    figure, axes = _figure(2, 9.0)
    axes[0][0].hist(sessions[EVENTS], bins=30)
    axes[0][0].set(title="events per session", xlabel="events", ylabel="sessions")
    axes[0][1].hist(sessions[DURATION_S] / 60.0, bins=30)
    axes[0][1].set(title="session duration", xlabel="minutes", ylabel="sessions")
    figure.tight_layout()
    return figure


def hours(per_hour: Any) -> Any:
    figure, axes = _figure()
    axes[0][0].bar(per_hour.index, per_hour.to_numpy())
    axes[0][0].set(title="events per hour of day (UTC, event time)", xlabel="hour")
    axes[0][0].set_xticks(range(0, 24, 3))
    figure.tight_layout()
    return figure


def funnel(table: Any) -> Any:
    figure, axes = _figure()
    axis = axes[0][0]
    bars = axis.barh(table.index.astype(str)[::-1], table[SESSIONS].to_numpy()[::-1])
    labels = [f"{share:.0%}" for share in table[OF_FIRST].to_numpy()[::-1]]
    axis.bar_label(bars, labels=labels, padding=3)
    axis.set(title="sessions reaching each stage (share of the first)", xlabel="sessions")
    figure.tight_layout()
    return figure


def reasons(kinds: Any, title: str) -> Any:
    figure, axes = _figure(width=8.0)
    axes[0][0].barh([str(k)[:60] for k in kinds.index[::-1]], kinds.to_numpy()[::-1])
    axes[0][0].set(title=title, xlabel="messages")
    figure.tight_layout()
    return figure


def quality(table: Any, metric: str = "ndcg_at_10") -> Any:
    """One run's models side by side on ``metric``, over all targets and new targets."""
    figure, axes = _figure(width=8.0)
    axis = axes[0][0]
    names = list(table[MODEL])
    width = 0.4
    for offset, scope in ((-width / 2, "all"), (width / 2, "new")):
        column = table[f"{scope}_{metric}"]
        axis.bar([n + offset for n in range(len(names))], column, width, label=scope)
    axis.set_xticks(range(len(names)), names, rotation=20)
    axis.set(title=f"{metric} by model (targets: all / new to the user)", ylabel=metric)
    axis.legend()
    figure.tight_layout()
    return figure


def model_ages(versions: Any, age_column: str, title: str) -> Any:
    figure, axes = _figure()
    shown = versions.dropna(subset=[age_column])
    labels = [f"v{v} {a}".strip() for v, a in zip(shown["version"], shown["aliases"], strict=True)]
    axes[0][0].barh(labels[::-1], shown[age_column].to_numpy()[::-1])
    axes[0][0].set(title=title, xlabel="hours")
    figure.tight_layout()
    return figure


def latencies(freshness: Any) -> Any:
    figure, axes = _figure()
    for version, group in freshness.groupby(MODEL_VERSION):
        axes[0][0].hist(group[LATENCY_S], bins=40, alpha=0.6, label=f"v{version}")
    axes[0][0].set(title="event → list latency", xlabel="seconds", ylabel="lists")
    axes[0][0].legend()
    figure.tight_layout()
    return figure


def ab(summary: Any, windows: Any) -> Any:
    """CTR and conversion per arm, and impressions per window and arm over event time."""
    figure, axes = _figure(3, 12.0)
    labels = [f"{a}\nv{v}" for a, v in zip(summary[ARM], summary[MODEL_VERSION], strict=True)]
    axes[0][0].bar(labels, summary[CTR].fillna(0.0))
    axes[0][0].set(title="CTR (clicks / impressions)")
    axes[0][1].bar(labels, summary[CONVERSION].fillna(0.0))
    axes[0][1].set(title="conversion (purchases / impressions)")
    for (arm, version), group in windows.groupby([ARM, MODEL_VERSION]):
        label = f"{arm} v{version}"
        axes[0][2].plot(group[WINDOW_START], group[IMPRESSIONS], marker="o", label=label)
    axes[0][2].set(title="impressions per window")
    axes[0][2].tick_params(axis="x", labelrotation=30)
    axes[0][2].legend()
    figure.tight_layout()
    return figure
