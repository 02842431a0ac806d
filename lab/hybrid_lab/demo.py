"""The demo: one workload through hybrid-scheduler, then through kube-scheduler, side by side.

A sample of the seed-paper workload (jobs of four teams with weights 1, 1, 2, 1, image
classification and NLP, one to eight GPUs), time-compressed so that a minute of the
scenario takes a second, is submitted to the dev cluster's real API server twice on the
same kwok nodes: first to pods that name hybrid-scheduler (run as its own process), then to
the default scheduler. Each round prints a live line and ends with per-team numbers;
a last table puts the two rounds side by side. Times are measured by polling the API
server once a second, so they are good to about a second. kwok runs a pod for its
annotated run time whatever the node, so node speed plays no part here (it does in the
simulator).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hybrid_lab.devcluster.apiserver import ApiServer
from hybrid_lab.devcluster.workload import recreate_namespaces, training_pod
from hybrid_policy.resources import CPU, GIB, GPU, MEMORY
from hybrid_policy.scenario.jobs import Job
from hybrid_policy.scenario.loader import load_scenario
from hybrid_policy.scenario.workload import prepare_workload

WEIGHTS = {"team-a": 1, "team-b": 1, "team-c": 2, "team-d": 1}
PREFIX = "demo-"
Print = Callable[[str], None]


@dataclass(frozen=True)
class DemoJob:
    """One training pod of the demo, times already compressed."""

    name: str
    namespace: str
    gpus: int
    cpu_millicores: int
    memory_gib: int
    submit_s: float
    runtime_s: int
    task_type: str


def demo_jobs(count: int, seed: int, time_scale: float, level: str = "heavy") -> list[DemoJob]:
    """The first ``count`` jobs of the seed-paper scenario, ``time_scale`` times faster."""
    jobs: list[Job] = prepare_workload(load_scenario("seed-paper"), level, seed).jobs[:count]
    return [
        DemoJob(
            name=f"{j.task_type}-{j.job_id}",
            namespace=PREFIX + j.namespace,
            gpus=j.requests.get(GPU, 0),
            cpu_millicores=j.requests.get(CPU, 0),
            memory_gib=math.ceil(j.requests.get(MEMORY, 0) / GIB),
            submit_s=j.submit_s / time_scale,
            runtime_s=max(1, round(j.runtime_s / time_scale)),
            task_type=j.task_type,
        )
        for j in jobs
    ]


@dataclass
class RoundResult:
    """What one scheduler made of the workload."""

    label: str
    submitted: dict[str, float] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    finished: dict[str, float] = field(default_factory=dict)
    namespace_of: dict[str, str] = field(default_factory=dict)
    gpus_of: dict[str, int] = field(default_factory=dict)
    total_gpus: int = 0

    def jct(self, namespace: str | None = None) -> float:
        """Mean completion time in seconds (of one namespace, or all)."""
        keys = [k for k in self.finished if namespace is None or self.namespace_of[k] == namespace]
        return (
            sum(self.finished[k] - self.submitted[k] for k in keys) / len(keys)
            if keys
            else math.nan
        )

    def wait(self) -> float:
        """Mean time from submission to running, seconds."""
        keys = list(self.started)
        return (
            sum(self.started[k] - self.submitted[k] for k in keys) / len(keys) if keys else math.nan
        )

    @property
    def makespan(self) -> float:
        """From the first submission to the last completion, seconds."""
        if not self.finished:
            return math.nan
        return max(self.finished.values()) - min(self.submitted.values())


def run_round(
    api: ApiServer,
    jobs: list[DemoJob],
    scheduler: str | None,
    label: str,
    out: Print,
    timeout_s: float,
) -> RoundResult:
    """Submit every job at its time and follow the pods until all have succeeded."""
    recreate_namespaces(api, {PREFIX + team: weight for team, weight in WEIGHTS.items()})
    nodes = api.items("/api/v1/nodes", labelSelector="type=kwok")
    total = sum(int(n["status"].get("allocatable", {}).get(GPU, 0)) for n in nodes)
    result = RoundResult(label, total_gpus=total)
    start = time.monotonic()
    pending = sorted(jobs, key=lambda j: j.submit_s)
    last_line = 0.0
    while time.monotonic() - start < timeout_s:
        now = time.monotonic() - start
        while pending and pending[0].submit_s <= now:
            job = pending.pop(0)
            body = training_pod(
                job.name,
                gpus=job.gpus,
                cpu=f"{job.cpu_millicores}m",
                memory=f"{job.memory_gib}Gi",
                runtime=f"{job.runtime_s}s",
                task_type=job.task_type,
                scheduler_name=scheduler,
            )
            api.create(f"/api/v1/namespaces/{job.namespace}/pods", body)
            key = f"{job.namespace}/{job.name}"
            result.submitted[key] = time.monotonic() - start
            result.namespace_of[key] = job.namespace
            result.gpus_of[key] = job.gpus
        _poll(api, result, time.monotonic() - start)
        if now - last_line >= 2.0 or (not pending and len(result.finished) == len(jobs)):
            out(_live_line(label, now, jobs, result))
            last_line = now
        if not pending and len(result.finished) == len(jobs):
            break
        time.sleep(1.0)
    return result


def _poll(api: ApiServer, result: RoundResult, now: float) -> None:
    for team in WEIGHTS:
        for pod in api.items(f"/api/v1/namespaces/{PREFIX}{team}/pods"):
            key = f"{PREFIX}{team}/{pod['metadata']['name']}"
            phase = (pod.get("status") or {}).get("phase")
            if phase in ("Running", "Succeeded") and key not in result.started:
                result.started[key] = now
            if phase == "Succeeded" and key not in result.finished:
                result.finished[key] = now


def _live_line(label: str, now: float, jobs: list[DemoJob], result: RoundResult) -> str:
    per_team = []
    for team in WEIGHTS:
        ns = PREFIX + team
        sent = sum(1 for k in result.submitted if result.namespace_of[k] == ns)
        done = sum(1 for k in result.finished if result.namespace_of[k] == ns)
        per_team.append(f"{team} {done}/{sent}")
    running = [k for k in result.started if k not in result.finished]
    busy = sum(result.gpus_of[k] for k in running)
    use = f"GPUs {busy}/{result.total_gpus} ({100 * busy / max(result.total_gpus, 1):3.0f}%)"
    return (
        f"{label:<26} t={now:4.0f}s  sent {len(result.submitted):3d}/{len(jobs)}"
        f"  running {len(running):3d}  done {len(result.finished):3d}  {use}  |  done/sent "
        + "  ".join(per_team)
    )


def side_by_side(rounds: list[RoundResult]) -> str:
    """The rounds' numbers as a table, one column per round."""
    rows: list[tuple[str, list[str]]] = [
        ("jobs completed", [f"{len(r.finished)}/{len(r.submitted)}" for r in rounds]),
        ("mean completion time (s)", [f"{r.jct():.1f}" for r in rounds]),
        ("mean wait (s)", [f"{r.wait():.1f}" for r in rounds]),
        ("makespan (s)", [f"{r.makespan:.1f}" for r in rounds]),
    ]
    rows += [
        (f"mean completion {team} (w={w}) (s)", [f"{r.jct(PREFIX + team):.1f}" for r in rounds])
        for team, w in WEIGHTS.items()
    ]
    return table([r.label for r in rounds], rows)


def table(labels: list[str], rows: list[tuple[str, list[str]]]) -> str:
    """Rows of values under one column per label, names on the left."""
    width = max(len(name) for name, _ in rows)
    cols = [max(len(label), *(len(v[i]) for _, v in rows)) for i, label in enumerate(labels)]
    header = " " * width + "  " + "  ".join(s.rjust(c) for s, c in zip(labels, cols, strict=True))
    lines = [header, "-" * len(header)]
    lines += [
        name.ljust(width) + "  " + "  ".join(v.rjust(c) for v, c in zip(values, cols, strict=True))
        for name, values in rows
    ]
    return "\n".join(lines)


def echo(line: str) -> None:
    """Print a line at once (the demo runs for minutes)."""
    print(line, flush=True, file=sys.stdout)


def describe(jobs: list[DemoJob]) -> str:
    """One line about the workload."""
    gpus = sum(j.gpus for j in jobs)
    span = max(j.submit_s for j in jobs) if jobs else 0.0
    teams = {t: sum(1 for j in jobs if j.namespace == PREFIX + t) for t in WEIGHTS}
    mix = ", ".join(f"{t} {n}" for t, n in teams.items())
    return f"{len(jobs)} jobs ({gpus} GPUs in all) over {span:.0f} s: {mix}"
