"""The simulator's preemption phase: which waiting pods and gangs are offered to the
policy core's phase (``preemption/phase.py``), and what a plan does when applied.

A plan's victims' jobs stop, each once (paying the scenario's costs), and wait again;
every pod the plan binds (the pod alone, or every waiting member of a gang) is bound at
once to the room they left: the simulator does not model grace periods, the restart
overhead stands for them. A gang's job starts when its last pod is bound, as always.
What the take-back guard reads (each running pod's ``took_from``, who is owed) comes
from the run's ledger of takes (``takes.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import BatchCycle
from hybrid_policy.prediction.predictor import RuntimePredictor
from hybrid_policy.preemption.model import RunningPod
from hybrid_policy.preemption.phase import PhasePlan, plan_preemptions

if TYPE_CHECKING:
    from hybrid_policy.sim.engine import Simulation


def preemptors(sim: Simulation, per_team: int = 4) -> list[PendingPod]:
    """The first ``per_team`` waiting units of each team in queue order (a pod alone, or
    every waiting member of a gang, counted once where its first member stands): those a
    pass could not place, or never offered because they fit nowhere."""
    heads: dict[str, list[PendingPod]] = {}
    units: dict[str, set[str | tuple[str, str]]] = {}
    for pod in sorted(sim.waiting.all(), key=sim.profile.queue_sort.sort_key):
        team, seen = heads.setdefault(pod.namespace, []), units.setdefault(pod.namespace, set())
        unit = pod.uid if pod.gang_key is None else pod.gang_key
        if unit in seen or len(seen) < per_team:
            seen.add(unit)
            team.append(pod)
    return [pod for team in heads.values() for pod in team]


def take_back(sim: Simulation, left: list[PendingPod], now_s: float) -> None:
    """Run the phase on ``left`` and apply its plans (module docstring)."""
    settings = sim.policy.preemption
    if settings is None or not sim.running:
        return
    cycle = BatchCycle(sim.profile, sim.snapshot, sim.rng, explain=False)
    masks = {p.uid: cycle.nodes_but_for_room(p) for p in left}
    running = running_pods(sim)
    predictor = None if sim.feed is None else sim.feed.predictor
    predictions = None if predictor is None else Predictions(predictor, now_s)
    queue = sim.queue_reader.view(
        sim.profile.arbitrator,
        lambda: sorted(sim.waiting.all(), key=sim.profile.queue_sort.sort_key),
        predictor,
        float(sim.snapshot.performance.mean()) if len(sim.snapshot) else 100.0,
        now_s,
    )
    plans = plan_preemptions(
        sim.snapshot,
        left,
        masks,
        running,
        sim.pending_since,
        now_s,
        settings,
        predictions,
        queue=queue,
        owed=sim.takes.owed(),
    )
    if sim.interval_s == 0 and sum(len(p.binds) for p in plans) < len(left):
        wake_when_allowed(sim, left, running, now_s)
    for made in plans:
        apply(sim, made, now_s)


def apply(sim: Simulation, made: PhasePlan, now_s: float) -> None:
    """Stop each victim job once (it waits again), then bind every pod of the plan; the
    ledger hears of the take first, while the preemptor's job still waits."""
    team = made.binds[0][0].namespace
    placed = [sim.job_of[sim.by_uid[pod.uid]] for pod, _ in made.binds]
    stopped = list(dict.fromkeys(sim.job_of[sim.by_uid[v.uid]] for v in made.victims))
    sim.takes.took(team, placed, stopped, now_s)
    for job in stopped:
        if sim.feed is not None:
            for p in sim.pods_of[job]:
                sim.feed.stopped(sim.pods[p].uid)
        sim.stop(job, now_s, preempted=True)
        sim.version[job] += 1
        sim.preemptions += 1
        sim.requeue(job, now_s)
    for pod, row in made.binds:
        sim.waiting.remove([pod])
        sim.pending_demand -= sim.snapshot.request_vector(pod)
        sim.snapshot.assume(pod, row)
        sim.bind(sim.by_uid[pod.uid], row, now_s)
        sim.pods_placed += 1


def wake_when_allowed(
    sim: Simulation, left: list[PendingPod], running: list[RunningPod], now_s: float
) -> None:
    """Passes run on events: run one more when the next waiting pod may trigger, or the
    next opted-in pod becomes old enough to be a victim."""
    settings = sim.policy.preemption
    assert settings is not None
    rules = settings.rules
    due = [sim.pending_since.get(p.uid, now_s) + rules.trigger_delay_s for p in left]
    due += [p.started_at_s + rules.min_runtime_s for p in running if p.opted_in]
    later = [t for t in due if t > now_s]
    if later:
        sim.wake_at(min(later))


def running_pods(sim: Simulation) -> list[RunningPod]:
    """Every running pod as preemption sees it."""
    spec = sim.workload.scenario.preemption
    out = []
    for job, run in sim.running.items():
        for p, node in zip(sim.pods_of[job], run.nodes, strict=True):
            pod = sim.pods[p]
            out.append(
                RunningPod(
                    namespace=pod.namespace,
                    name=pod.name,
                    uid=pod.uid,
                    node=sim.snapshot.nodes[node].name,
                    requests=pod.requests,
                    started_at_s=run.since_s,
                    priority=pod.priority,
                    opted_in=bool(sim.costs.opted_in[job]),
                    preemptions=int(sim.costs.count[job]),
                    checkpoint_interval_s=spec.checkpoint_interval_s,
                    gang=pod.gang_key,
                    took_from=sim.takes.took_from(job),
                )
            )
    return out


class Predictions:
    """What the policy's own predictor says, as the preemption phase asks it."""

    def __init__(self, predictor: RuntimePredictor, now_s: float) -> None:
        self.predictor = predictor
        self.now_s = now_s
        self._remaining: dict[str, float] = {}  # one phase asks of a pod many times

    def duration_s(self, pod: PendingPod) -> float:
        """A waiting pod's predicted run time."""
        return self.predictor.duration(pod, self.now_s).seconds

    def remaining_s(self, pod: RunningPod) -> float:
        """A running pod's predicted time left (infinite if it is unknown)."""
        known = self._remaining.get(pod.uid)
        if known is None:
            try:
                known = self.predictor.remaining(pod.uid, self.now_s).seconds
            except KeyError:
                known = float("inf")
            self._remaining[pod.uid] = known
        return known
