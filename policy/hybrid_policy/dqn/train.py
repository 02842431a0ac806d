"""Training the DQN scorer in the simulator, with periodic evaluation and a learning curve.

Episodes are whole simulated runs of the training workloads (levels x training seeds, in
turn). Every ``eval_every`` steps (checked between episodes) the greedy network is run on
the validation workloads and compared with ``kube-default`` and ``binpack``; the best
network by validation mean JCT is the one written out. Same seed, same weights.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from hybrid_policy.bench import run_one
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
from hybrid_policy.policies import scored_policy
from hybrid_policy.report.summary import summarise
from hybrid_policy.scenario.model import Scenario
from hybrid_policy.scenario.workload import Workload, prepare_workload
from hybrid_policy.sim.engine import Simulation

BASELINES: tuple[str, ...] = ("kube-default", "binpack")


@dataclass(frozen=True)
class TrainConfig:
    """What to train on and for how long."""

    scenario: Scenario
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


@dataclass
class TrainResult:
    """Where the outputs went and how the best network did."""

    checkpoint: Path
    log_csv: Path
    curve_png: Path
    best_validation_jct_min: float
    baseline_jct_min: dict[str, float]
    steps: int
    wall_s: float


def _workloads(cfg: TrainConfig, seeds: Sequence[int]) -> list[Workload]:
    return [prepare_workload(cfg.scenario, lvl, s) for lvl in cfg.levels for s in seeds]


def _mean_jct_min(records: Sequence[dict[str, Any]]) -> float:
    return float(np.mean([r["jct_s"]["mean"] for r in records])) / 60.0


def evaluate_network(network: QNetwork, workloads: Sequence[Workload]) -> float:
    """Mean JCT in minutes of the greedy network over ``workloads`` (averaged)."""
    records = []
    for wl in workloads:
        policy = scored_policy("dqn", DqnScore(network))
        records.append(summarise(Simulation(wl, policy, wl.seed).run()))
    return _mean_jct_min(records)


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train(cfg: TrainConfig) -> TrainResult:
    """Train, evaluate periodically, write the best checkpoint, the CSV log and the PNG."""
    started = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng([cfg.seed, 0x64716E])
    train_wl = _workloads(cfg, cfg.train_seeds)
    val_wl = _workloads(cfg, cfg.validation_seeds)
    max_nodes = max(len(w.nodes) for w in (*train_wl, *val_wl))
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
    baselines = {b: _mean_jct_min([run_one(w, b) for w in val_wl]) for b in BASELINES}
    rows: list[dict[str, float | int | str]] = []
    best = (float("inf"), {k: v.clone() for k, v in learner.online.state_dict().items()})
    next_eval = min(cfg.eval_every, cfg.steps)
    bar = tqdm(total=cfg.steps, desc="training", unit="step", disable=not cfg.show_progress)

    def progress(_now_s: float) -> None:
        bar.update(actor.steps - bar.n)

    for episode, wl in enumerate(itertools.cycle(train_wl)):
        policy = scored_policy("dqn-train", DqnScore(learner.online, actor))
        sim = TrainingSimulation(wl, policy, cfg.seed * 1000 + episode, progress=progress)
        actor.begin(sim)
        with contextlib.suppress(StepBudgetSpentError):
            sim.run()
        actor.end()
        learner.online.train()
        progress(0.0)
        done = actor.steps >= cfg.steps
        if actor.steps >= next_eval or done:
            jct = evaluate_network(learner.online, val_wl)
            if jct < best[0]:
                best = (jct, {k: v.clone() for k, v in learner.online.state_dict().items()})
            loss = float(np.mean(actor.losses[-1000:])) if actor.losses else float("nan")
            rows.append(
                {
                    "step": actor.steps,
                    "episode": episode,
                    "epsilon": round(actor.epsilon, 4),
                    "loss": round(loss, 5),
                    "dqn_jct_min": round(jct, 4),
                    **{f"{b}_jct_min": round(v, 4) for b, v in baselines.items()},
                }
            )
            bar.write(
                f"step {actor.steps}: validation mean JCT dqn {jct:.2f} min, "
                + ", ".join(f"{b} {v:.2f}" for b, v in baselines.items())
            )
            next_eval += cfg.eval_every
        if done:
            break
    bar.close()
    network = QNetwork(FEATURE_COUNT, cfg.hidden, dropped)
    network.load_state_dict(best[1])
    wall = time.perf_counter() - started
    metadata = {
        "scenario": cfg.scenario.name,
        "levels": list(cfg.levels),
        "train_seeds": list(cfg.train_seeds),
        "validation_seeds": list(cfg.validation_seeds),
        "steps": cfg.steps,
        "seed": cfg.seed,
        "dropped_feature_groups": list(cfg.drop_groups),
        "feature_schema_version": FEATURE_SCHEMA_VERSION,
        "validation_jct_min": best[0],
    }
    # No wall time in the file: the same command and seed must give the same bytes.
    save_checkpoint(network, cfg.out, metadata)
    log_csv, curve_png = cfg.out.with_suffix(".csv"), cfg.out.with_suffix(".png")
    _write_csv(log_csv, rows)
    _plot(curve_png, rows, baselines)
    return TrainResult(cfg.out, log_csv, curve_png, best[0], baselines, actor.steps, wall)


def _write_csv(path: Path, rows: list[dict[str, float | int | str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        if not rows:
            return
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _plot(
    path: Path, rows: list[dict[str, float | int | str]], baselines: dict[str, float]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = [float(r["step"]) for r in rows]
    ax.plot(steps, [float(r["dqn_jct_min"]) for r in rows], marker="o", label="dqn")
    for i, (name, value) in enumerate(baselines.items()):
        ax.axhline(value, linestyle="--", color=f"C{i + 1}", label=name)
    ax.set_xlabel("training step (pods placed)")
    ax.set_ylabel("validation mean JCT (min)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def with_horizon(scenario: Scenario, hours: float | None) -> Scenario:
    """``scenario`` with a shorter arrival window (for quick runs and tests)."""
    return scenario if hours is None else dataclasses.replace(scenario, horizon_hours=hours)
