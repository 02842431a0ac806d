"""Training the DQN scorer in the simulator, with periodic evaluation and a learning curve.

Episodes are whole simulated runs of the training workloads: for a generated scenario,
levels x training seeds; for a trace scenario, the trace cut into windows of a few days
(all but the last, once per training seed). With several scenarios the episodes take the
scenarios in turn. Every ``eval_every`` steps (checked between episodes) the greedy
network is run on the validation workloads (the validation seeds; a trace's last window)
and compared with ``kube-default`` and ``binpack``; the best network, by validation mean
JCT relative to ``binpack``'s averaged over the scenarios, is the one written out. Same
seed, same weights. With ``Discipline.RESERVE`` the episodes and the validation run
``hybrid-reserve`` instead of ``dqn`` (:mod:`hybrid_lab.training_reserve`).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from hybrid_lab.discipline import Discipline
from hybrid_lab.matrix import run_one
from hybrid_lab.training_reserve import (
    evaluate_in_reserve,
    reserve_baselines,
    reserve_training_policy,
)
from hybrid_policy.dqn.checkpoint import save_checkpoint
from hybrid_policy.dqn.env import (
    ExplorationConfig,
    LearningActor,
    StepBudgetSpentError,
    TrainingSimulation,
)
from hybrid_policy.dqn.learner import DqnLearner, LearnerConfig
from hybrid_policy.dqn.network import DEFAULT_HIDDEN, QNetwork
from hybrid_policy.dqn.replay import ReplayBuffer
from hybrid_policy.dqn.scorer import DqnScore
from hybrid_policy.features import FEATURE_COUNT, FEATURE_SCHEMA_VERSION, group_columns
from hybrid_policy.policies import Policy, scored_policy
from hybrid_policy.report.record import RunSummary
from hybrid_policy.report.summary import summarise
from hybrid_policy.scenario.fields import ScenarioError
from hybrid_policy.scenario.model import Scenario
from hybrid_policy.scenario.workload import Workload, prepare_workload, trace_windows
from hybrid_policy.sim.engine import Simulation

BASELINES: tuple[str, ...] = ("kube-default", "binpack")


@dataclass(frozen=True)
class TrainConfig:
    """What to train on and for how long."""

    #: Scenarios to train on, in turn (generated ones at ``levels``, traces in windows).
    scenarios: Sequence[Scenario]
    levels: Sequence[str]
    train_seeds: Sequence[int]
    validation_seeds: Sequence[int]
    steps: int
    seed: int
    out: Path
    eval_every: int = 20_000
    warm_start_steps: int = 5_000
    epsilon_decay_steps: int = 20_000
    hidden: Sequence[int] = DEFAULT_HIDDEN
    replay_capacity: int = 20_000
    learn_after: int = 1_000
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    show_progress: bool = True
    #: Feature groups hidden from the network (ablation), see ``FEATURE_GROUPS``.
    drop_groups: Sequence[str] = ()
    #: torch intra-op threads (1: reproducible and polite on a shared machine).
    threads: int = 1
    #: Length of the windows a trace scenario is cut into, one episode each.
    trace_window_days: float = 7.0
    #: The policy the network learns and is validated inside.
    discipline: Discipline = Discipline.DQN


@dataclass
class TrainResult:
    """Where the outputs went and how the best network did."""

    checkpoint: Path
    log_csv: Path
    curve_png: Path
    #: Per scenario: the chosen network's validation mean JCT, and the baselines'.
    best_validation_jct_min: dict[str, float]
    baseline_jct_min: dict[str, dict[str, float]]
    steps: int
    wall_s: float


@dataclass(frozen=True)
class _Source:
    """One training scenario's episodes and validation workloads."""

    name: str
    train: list[Workload]
    validation: list[Workload]


def _sources(cfg: TrainConfig) -> list[_Source]:
    sources: list[_Source] = []
    for scenario in cfg.scenarios:
        if any(src.name == scenario.name for src in sources):
            raise ScenarioError(scenario.source, "name", "scenario given twice", scenario.name)
        if scenario.trace is None:
            levels = [lvl for lvl in cfg.levels if lvl in scenario.workloads]
            train = [prepare_workload(scenario, lvl, s) for lvl in levels for s in cfg.train_seeds]
            val = [
                prepare_workload(scenario, lvl, s) for lvl in levels for s in cfg.validation_seeds
            ]
        else:
            days = cfg.trace_window_days
            train = [w for s in cfg.train_seeds for w in trace_windows(scenario, s, days)[:-1]]
            val = [trace_windows(scenario, s, days)[-1] for s in cfg.validation_seeds]
        if not train or not val:
            raise ScenarioError(scenario.source, "workloads", "nothing to train or validate on")
        sources.append(_Source(scenario.name, train, val))
    return sources


def _episodes(sources: Sequence[_Source]) -> Iterator[Workload]:
    """Each scenario's training workloads in a cycle, the scenarios in turn."""
    cycles = [itertools.cycle(source.train) for source in sources]
    for cycle in itertools.cycle(cycles):
        yield next(cycle)


def _mean_jct_min(records: Sequence[RunSummary]) -> float:
    return float(np.mean([r.jct_s.mean for r in records])) / 60.0


def evaluate_network(network: QNetwork, workloads: Sequence[Workload]) -> float:
    """Mean JCT in minutes of the greedy network over ``workloads`` (averaged)."""
    records = []
    for wl in workloads:
        policy = scored_policy("dqn", DqnScore(network))
        records.append(summarise(Simulation(wl, policy, wl.seed).run()))
    return _mean_jct_min(records)


def _episode_policy(cfg: TrainConfig, learner: DqnLearner, actor: LearningActor) -> Policy:
    if cfg.discipline is Discipline.RESERVE:
        return reserve_training_policy(learner.online, actor)
    return scored_policy("dqn-train", DqnScore(learner.online, actor))


def _baselines(cfg: TrainConfig, source: _Source) -> dict[str, float]:
    if cfg.discipline is Discipline.RESERVE:
        return reserve_baselines(source.validation)
    return {b: _mean_jct_min([run_one(w, b) for w in source.validation]) for b in BASELINES}


def _validate(cfg: TrainConfig, network: QNetwork, source: _Source) -> tuple[float, float | None]:
    """Validation mean JCT (minutes) of ``network``, and Jain's index under reservation."""
    if cfg.discipline is Discipline.RESERVE:
        checked = evaluate_in_reserve(network, source.validation)
        return checked.jct_min, checked.jain
    return evaluate_network(network, source.validation), None


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train(cfg: TrainConfig) -> TrainResult:
    """Train, evaluate periodically, write the best checkpoint, the CSV log and the PNG."""
    started = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng([cfg.seed, 0x64716E])
    sources = _sources(cfg)
    max_nodes = max(len(w.nodes) for src in sources for w in (*src.train, *src.validation))
    dropped = [c for g in cfg.drop_groups for c in group_columns(g)]
    network = QNetwork(FEATURE_COUNT, cfg.hidden, dropped)
    learner = DqnLearner(network, cfg.learner, _device())
    replay = ReplayBuffer(cfg.replay_capacity, max_nodes, FEATURE_COUNT)
    explore = ExplorationConfig(
        total_steps=cfg.steps,
        warm_start_steps=cfg.warm_start_steps,
        epsilon_decay_steps=cfg.epsilon_decay_steps,
        learn_after=cfg.learn_after,
    )
    actor = LearningActor(learner, replay, explore, rng)
    label = cfg.discipline.policy_name
    baselines = {src.name: _baselines(cfg, src) for src in sources}
    rows: list[dict[str, float | int | str]] = []
    best_state = {k: v.clone() for k, v in learner.online.state_dict().items()}
    best_score, best_jct = float("inf"), {src.name: float("inf") for src in sources}
    next_eval = min(cfg.eval_every, cfg.steps)
    bar = tqdm(total=cfg.steps, desc="training", unit="step", disable=not cfg.show_progress)

    def progress(_now_s: float) -> None:
        bar.update(actor.steps - bar.n)

    for episode, wl in enumerate(_episodes(sources)):
        policy = _episode_policy(cfg, learner, actor)
        sim = TrainingSimulation(wl, policy, cfg.seed * 1000 + episode, progress=progress)
        actor.begin(sim)
        with contextlib.suppress(StepBudgetSpentError):
            sim.run()
        actor.end()
        learner.online.train()
        progress(0.0)
        done = actor.steps >= cfg.steps
        if actor.steps >= next_eval or done:
            checked = {src.name: _validate(cfg, learner.online, src) for src in sources}
            jct = {name: value for name, (value, _) in checked.items()}
            score = float(np.mean([jct[n] / baselines[n]["binpack"] for n in jct]))
            if score < best_score:
                best_score, best_jct = score, jct
                best_state = {k: v.clone() for k, v in learner.online.state_dict().items()}
            loss = float(np.mean(actor.losses[-1000:])) if actor.losses else float("nan")
            row: dict[str, float | int | str] = {
                "step": actor.steps,
                "episode": episode,
                "epsilon": round(actor.epsilon, 4),
                "loss": round(loss, 5),
            }
            for name, value in jct.items():
                prefix = "" if len(sources) == 1 else f"{name}_"
                row[f"{prefix}{label}_jct_min"] = round(value, 4)
                jain = checked[name][1]
                if jain is not None:
                    row[f"{prefix}{label}_jain"] = round(jain, 4)
                for b, v in baselines[name].items():
                    row[f"{prefix}{b}_jct_min"] = round(v, 4)
            if len(sources) > 1:
                row["dqn_vs_binpack"] = round(score, 4)
            rows.append(row)
            bar.write(f"step {actor.steps}: validation mean JCT " + _versus(jct, baselines, label))
            next_eval += cfg.eval_every
        if done:
            break
    bar.close()
    network = QNetwork(FEATURE_COUNT, cfg.hidden, dropped)
    network.load_state_dict(best_state)
    wall = time.perf_counter() - started
    single = len(sources) == 1
    metadata: dict[str, Any] = {
        "scenario": "+".join(src.name for src in sources),
        "levels": list(cfg.levels),
        "train_seeds": list(cfg.train_seeds),
        "validation_seeds": list(cfg.validation_seeds),
        "steps": cfg.steps,
        "seed": cfg.seed,
        "dropped_feature_groups": list(cfg.drop_groups),
        "feature_schema_version": FEATURE_SCHEMA_VERSION,
        "validation_jct_min": best_jct[sources[0].name] if single else best_jct,
    }
    if any(sc.trace is not None for sc in cfg.scenarios):
        metadata["trace_window_days"] = cfg.trace_window_days
    if cfg.discipline is not Discipline.DQN:
        metadata["discipline"] = cfg.discipline.value
    # No wall time in the file: the same command and seed must give the same bytes.
    save_checkpoint(network, cfg.out, metadata)
    log_csv, curve_png = cfg.out.with_suffix(".csv"), cfg.out.with_suffix(".png")
    _write_csv(log_csv, rows)
    _plot(curve_png, rows, baselines, label)
    return TrainResult(cfg.out, log_csv, curve_png, best_jct, baselines, actor.steps, wall)


def _versus(
    jct: dict[str, float], baselines: dict[str, dict[str, float]], label: str = "dqn"
) -> str:
    """``dqn 16.03 min, kube-default 18.36, binpack 16.99`` per scenario."""
    parts = []
    for name, value in jct.items():
        others = ", ".join(f"{b} {v:.2f}" for b, v in baselines[name].items())
        scenario = "" if len(jct) == 1 else f"{name}: "
        parts.append(f"{scenario}{label} {value:.2f} min, {others}")
    return "; ".join(parts)


def _write_csv(path: Path, rows: list[dict[str, float | int | str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        if not rows:
            return
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _plot(
    path: Path,
    rows: list[dict[str, float | int | str]],
    baselines: dict[str, dict[str, float]],
    label: str = "dqn",
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(baselines)
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 3.5), squeeze=False)
    steps = [float(r["step"]) for r in rows]
    for ax, name in zip(axes[0], names, strict=True):
        prefix = "" if len(names) == 1 else f"{name}_"
        values = [float(r[f"{prefix}{label}_jct_min"]) for r in rows]
        ax.plot(steps, values, marker="o", label=label)
        for i, (baseline, value) in enumerate(baselines[name].items()):
            ax.axhline(value, linestyle="--", color=f"C{i + 1}", label=baseline)
        ax.set_xlabel("training step (pods placed)")
        ax.set_ylabel("validation mean JCT (min)")
        if len(names) > 1:
            ax.set_title(name)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def with_horizon(scenario: Scenario, hours: float | None) -> Scenario:
    """``scenario`` with a shorter arrival window (for quick runs and tests)."""
    return scenario if hours is None else dataclasses.replace(scenario, horizon_hours=hours)
