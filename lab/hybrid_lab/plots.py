"""PNG figures mirroring the seed paper's Figures 1 and 2, with error bars over seeds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from hybrid_policy.report.stats import mean_ci95
from hybrid_policy.report.table import Record, group, task_types


def _levels_and_policies(records: Sequence[Record]) -> tuple[list[str], list[str]]:
    levels = list(dict.fromkeys(r.workload for r in records))
    policies = list(dict.fromkeys(r.policy for r in records))
    return levels, policies


def _bars(
    ax: Any, x: Any, index: int, count: int, stats: list[tuple[float, float]], label: str
) -> None:
    """One policy's bars in a group of ``count``, with its 95 % intervals as error bars."""
    width = 0.8 / count
    ax.bar(
        x + (index - (count - 1) / 2) * width,
        [mean for mean, _ in stats],
        width,
        yerr=[half for _, half in stats],
        capsize=3,
        label=label,
    )


def utilisation_figure(records: Sequence[Record], path: Path) -> Path:
    """Figure 1: GPU allocation utilisation by workload level, one bar per policy,
    with the offered load drawn over each group (utilisation cannot exceed it for long)."""
    levels, policies = _levels_and_policies(records)
    grouped = group(records)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(levels) * len(policies) / 2), 4.2))
    x = np.arange(len(levels))
    for i, policy in enumerate(policies):
        stats = [
            mean_ci95([100 * r.utilization.gpu for r in grouped.get((lvl, policy), [])])
            for lvl in levels
        ]
        _bars(ax, x, i, len(policies), stats, policy)
    for j, lvl in enumerate(levels):
        offered = mean_ci95([100 * r.offered_load for r in records if r.workload == lvl])[0]
        ax.hlines(
            offered,
            j - 0.45,
            j + 0.45,
            colors="black",
            linestyles="dashed",
            label="offered load" if j == 0 else "_nolegend_",
        )
    ax.set_xticks(x, levels)
    ax.set_ylabel("GPU allocation utilisation (%)")
    ax.set_xlabel("workload")
    ax.set_ylim(0, 105)
    ax.set_title("Resource utilisation by workload (mean ±95% CI over seeds)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def completion_figure(records: Sequence[Record], path: Path) -> Path:
    """Figure 2: mean completion time per task type and policy, one panel per level."""
    levels, policies = _levels_and_policies(records)
    tasks = task_types(records)
    grouped = group(records)
    fig, axes = plt.subplots(1, len(levels), figsize=(4.5 * len(levels), 4.2), squeeze=False)
    x = np.arange(len(tasks))
    for ax, lvl in zip(axes[0], levels, strict=True):
        for i, policy in enumerate(policies):
            rs = grouped.get((lvl, policy), [])
            stats = [
                mean_ci95([r.jct_by_task_type_s.get(t, float("nan")) / 60 for r in rs])
                for t in tasks
            ]
            _bars(ax, x, i, len(policies), stats, policy)
        ax.set_xticks(x, tasks, fontsize=8)
        ax.set_title(f"workload {lvl}")
        ax.set_ylabel("mean completion time (min)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Task completion time by task type (mean ±95% CI over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


#: The goal drawn on the fairness figure: Jain's index at least this...
GOAL_JAIN = 0.95
#: ...and mean JCT at most that of the best of these heuristics (the lowest mean JCT).
HEURISTICS = ("kube-default", "binpack", "load-aware", "drf")


def best_heuristic(mean_jct: Mapping[str, float]) -> tuple[str, float] | None:
    """The heuristic of :data:`HEURISTICS` with the lowest mean JCT in ``mean_jct`` (policy
    to mean JCT at one level), and that JCT; None when no heuristic was run."""
    run = [(jct, name) for name, jct in mean_jct.items() if name in HEURISTICS]
    if not run:
        return None
    jct, name = min(run)
    return name, jct


def fairness_figure(records: Sequence[Record], path: Path) -> Path:
    """Fairness against completion time: one point per policy (mean ±95 % CI over seeds),
    one panel per level, with the region of Jain >= 0.95 and mean JCT at most the best
    heuristic's (:func:`best_heuristic`) shaded where a heuristic was run."""
    levels, policies = _levels_and_policies(records)
    grouped = group(records)
    fig, axes = plt.subplots(1, len(levels), figsize=(5.2 * len(levels), 4.4), squeeze=False)
    for ax, lvl in zip(axes[0], levels, strict=True):
        mean_jct: dict[str, float] = {}
        for i, policy in enumerate(policies):
            rs = grouped.get((lvl, policy), [])
            if not rs:
                continue
            jct = mean_ci95([r.jct_s.mean / 60 for r in rs])
            jain = mean_ci95([r.jain_fairness for r in rs])
            mean_jct[policy] = jct[0]
            ax.errorbar(
                jct[0], jain[0], xerr=jct[1], yerr=jain[1], fmt="o", capsize=3, color=f"C{i}"
            )
            # Alternate labels above and below their points, so that neighbours stay legible.
            offset = (5, 4) if i % 2 == 0 else (5, -12)
            ax.annotate(policy, (jct[0], jain[0]), textcoords="offset points", xytext=offset)
        best = best_heuristic(mean_jct)
        if best is not None:
            name, limit = best
            left = min(ax.get_xlim()[0], 0.9 * limit)
            ax.fill_between(
                [left, limit],
                GOAL_JAIN,
                1.0,
                color="green",
                alpha=0.12,
                label=f"Jain >= {GOAL_JAIN:g}, JCT <= best heuristic ({name})",
            )
            ax.set_xlim(left=left)
            ax.legend(fontsize=8, loc="lower right")
        ax.set_title(f"workload {lvl}")
        ax.set_xlabel("mean completion time (min)")
        ax.set_ylabel("Jain's index over weighted shares")
    fig.suptitle("Fairness against completion time (mean ±95% CI over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
