"""The comparison as a terminal table, a JSON document and a figure.

One row per scheduler, the simulator's prediction for the same jobs on the row below it
(``sim:``) where a matching policy exists; a skipped scheduler is one line with its
reason. The figure plots mean JCT against Jain's index, measured (filled) and predicted
(hollow), in the style of :mod:`hybrid_lab.plots`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from hybrid_lab.clusterbench.compare.prediction import Prediction
from hybrid_lab.clusterbench.compare.rounds import RoundResult

MIB = 1024 * 1024
COLUMNS = (
    ("scheduler", 20),
    ("done", 7),
    ("JCT mean", 9),
    ("JCT p95", 8),
    ("wait mean", 10),
    ("wait p95", 9),
    ("Jain", 6),
    ("worst sd", 9),
    ("gang GPU-s", 11),
    ("pods/s", 7),
    ("writes/pod", 10),
    ("CPU s", 7),
    ("RSS MiB", 8),
)


def _num(value: float, digits: int = 1) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _line(cells: Sequence[str]) -> str:
    return "  ".join(
        cell.ljust(width) if i == 0 else cell.rjust(width)
        for i, (cell, (_, width)) in enumerate(zip(cells, COLUMNS, strict=True))
    )


def _measured(result: RoundResult) -> list[str]:
    m, usage = result.metrics, result.usage
    assert m is not None
    return [
        result.scheduler.value,
        f"{m.finished}/{m.jobs}",
        _num(m.jct_mean_s),
        _num(m.jct_p95_s),
        _num(m.wait_mean_s),
        _num(m.wait_p95_s),
        _num(m.jain, 3),
        _num(m.worst_team_slowdown, 2),
        _num(m.partial_gang_gpu_s, 0),
        _num(m.pods_per_s),
        _num(result.calls_per_pod.get("all_writes", math.nan), 2),
        _num(usage.cpu_s if usage else math.nan),
        _num(usage.peak_rss_bytes / MIB if usage else math.nan, 0),
    ]


def _predicted(p: Prediction, jobs: int) -> list[str]:
    return [
        f"  sim: {p.policy}",
        f"{jobs - p.jobs_left}/{jobs}",
        _num(p.jct_mean_s),
        _num(p.jct_p95_s),
        _num(p.wait_mean_s),
        _num(p.wait_p95_s),
        _num(p.jain, 3),
        _num(p.worst_team_slowdown, 2),
        _num(p.partial_gang_gpu_s, 0),
        "",
        "",
        "",
        "",
    ]


def table(results: Sequence[RoundResult], predictions: Mapping[str, Prediction]) -> str:
    """The comparison, seconds of wall-clock time."""
    lines = [_line([name for name, _ in COLUMNS])]
    for result in results:
        if result.metrics is None:
            lines.append(f"{result.scheduler.value:<20}  skipped: {result.skipped}")
            continue
        lines.append(_line(_measured(result)))
        predicted = predictions.get(result.scheduler.value)
        if predicted is not None:
            lines.append(_line(_predicted(predicted, result.metrics.jobs)))
        if result.stopped:
            lines.append(f"{'':<20}  stopped: {result.stopped}")
    lines.append(
        "times in seconds; Jain over weighted GPU shares per window; worst sd: the worst "
        "team's mean slowdown; gang GPU-s: GPU-seconds of partly placed gangs; writes/pod: "
        "every write to the API server per bound pod (the same stream in every round)"
    )
    return "\n".join(lines)


def _clean(value: Any) -> Any:
    """NaN as null, recursively (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def as_json(
    parameters: Mapping[str, Any],
    results: Sequence[RoundResult],
    predictions: Mapping[str, Prediction],
) -> dict[str, Any]:
    """Everything measured, with the parameters and the predictions."""
    rounds = []
    for result in results:
        row = dataclasses.asdict(result)
        row["scheduler"] = result.scheduler.value
        predicted = predictions.get(result.scheduler.value)
        row["prediction"] = dataclasses.asdict(predicted) if predicted else None
        rounds.append(row)
    document: dict[str, Any] = _clean({"parameters": dict(parameters), "rounds": rounds})
    return document


def figure(
    results: Sequence[RoundResult], predictions: Mapping[str, Prediction], path: Path
) -> Path:
    """Mean JCT against Jain's index: measured filled, the simulator's prediction hollow."""
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, result in enumerate(r for r in results if r.metrics is not None):
        assert result.metrics is not None
        colour = colours[i % len(colours)]
        name = result.scheduler.value
        ax.scatter(result.metrics.jain, result.metrics.jct_mean_s, color=colour, label=name)
        predicted = predictions.get(name)
        if predicted is not None:
            ax.scatter(
                predicted.jain,
                predicted.jct_mean_s,
                facecolors="none",
                edgecolors=colour,
                label=f"{name} (simulator: {predicted.policy})",
            )
    ax.set_xlabel("Jain's index over weighted GPU shares (1 = fair)")
    ax.set_ylabel("mean JCT (s, wall clock)")
    ax.set_title("Fairness against job completion time, one job stream")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path
