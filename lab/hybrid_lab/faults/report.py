"""The faults' results as a Markdown table, with each fault's violations and notes below."""

from __future__ import annotations

from collections.abc import Sequence

from hybrid_lab.faults.plan import FaultPlan
from hybrid_lab.faults.verdict import FaultResult

COLUMNS = (
    "fault",
    "pods",
    "bound",
    "stranded",
    "waiting",
    "overcommits",
    "double bindings",
    "non-leader bindings (requests)",
    "to deleted node",
    "stuck probes",
    "pending gauge / API",
    "crashes",
    "recovery (s)",
)


def _row(r: FaultResult, plan: FaultPlan) -> list[str]:
    gauge = "no leader" if r.gauge is None else f"{r.gauge:g}"
    recovery = f"> {plan.recovery_timeout_s:g}" if r.recovery_s is None else f"{r.recovery_s:.1f}"
    return [
        r.fault,
        str(r.pods),
        str(r.bound),
        str(len(r.stranded)),
        str(r.waiting),
        str(len(r.overcommits)),
        str(len(r.double_bindings)),
        f"{len(r.stale_bindings)} ({len(r.stray_requests) + len(r.refused_stray_requests)})",
        str(len(r.lost_bindings)),
        f"{r.stuck} of {r.probes}",
        f"{gauge} / {r.api_pending}",
        str(len(r.crashes)),
        recovery,
    ]


def table(results: Sequence[FaultResult], plan: FaultPlan) -> str:
    """The summary table, one row per fault."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_row(r, plan)) + " |" for r in results]
    return "\n".join(lines)


def details(results: Sequence[FaultResult]) -> str:
    """Per fault: what it did, what broke (the first few of each), and its notes."""
    blocks = []
    for r in results:
        verdict = "; ".join(r.violations) or "every invariant held"
        lines = [f"- **{r.fault}** ({r.summary[0].lower()}{r.summary[1:]}): {verdict}."]
        lines += [f"  - {line}" for line in r.details()]
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def report(results: Sequence[FaultResult], plan: FaultPlan, command: str) -> str:
    """The whole report: the command, the table, the details."""
    return "\n\n".join(
        [
            f"`{command}`",
            f"Workload per fault: {plan.pods} pods in three namespaces (weights 1, 2, 4) over "
            f"{plan.flow_s:g} s, each 1 or 2 GPUs for {plan.runtime_s[0]:g}-"
            f"{plan.runtime_s[1]:g} s; the restart fault's burst: {plan.burst} pods at once; "
            f"seed {plan.seed}.",
            table(results, plan),
            details(results),
        ]
    )
