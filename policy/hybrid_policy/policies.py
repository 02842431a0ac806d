"""The named policies: each one a scheduling profile built from the framework's plugins.

``kube-default`` is kube-scheduler's default profile as far as it matters for these
workloads (PrioritySort; NodeResourcesFit LeastAllocated and BalancedAllocation on CPU and
memory, weight 1 each; preferred node affinity, preferred inter-pod affinity and
``ScheduleAnyway`` spread, weight 2 each as in kube-scheduler). The others change one thing
each, so a difference in the results has one cause. Every policy applies the same hard
filters (:func:`default_filters`); the preference scores are kube-scheduler's and belong to
the profiles that score like it (``kube-default``, ``drf``), since the other policies'
scores are their whole point (and the game's scale counts every scorer's weight).
``srtf-oracle`` is not deployable: it knows run times and may preempt and migrate for
free, and stands in for a lower bound on mean completion time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hybrid_policy.framework.paths import ModelFallback, ScorerFallback
from hybrid_policy.framework.plugins import Arbitrator, FilterPlugin, QueueSortPlugin, ScorePlugin
from hybrid_policy.framework.profile import SchedulingProfile
from hybrid_policy.plugins.affinity import InterPodAffinity, InterPodAffinityScore
from hybrid_policy.plugins.arbiters import DrfArbitrator, SequentialArbitrator
from hybrid_policy.plugins.filters import (
    NodeAffinity,
    NodeReady,
    NodeResourcesFit,
    NodeUnschedulable,
    TaintToleration,
)
from hybrid_policy.plugins.ordering import PrioritySort, ShortestRemainingFirst
from hybrid_policy.plugins.ports import NodePorts
from hybrid_policy.plugins.scores import (
    BalancedAllocation,
    LeastAllocated,
    NodeAffinityScore,
    NodePerformance,
    RandomScore,
    TargetLoadPacking,
    binpack_scorer,
)
from hybrid_policy.plugins.spread import PodTopologySpread, PodTopologySpreadScore
from hybrid_policy.prediction.predictor import RuntimePredictor
from hybrid_policy.preemption.phase import PreemptionSettings
from hybrid_policy.reservation import BackfillMode, ReservationSettings, ReservingArbitrator


@dataclass(frozen=True)
class Policy:
    """A named profile and what a driver must know about it."""

    name: str
    description: str
    profile: SchedulingProfile
    #: The driver re-plans every running pod on each pass and may stop or move them.
    preemptive: bool = False
    #: The policy is told every job's true run time (only the oracle, never deployable).
    clairvoyant: bool = False
    #: Run-time predictor the driver feeds with starts, progress and completions.
    predictor: RuntimePredictor | None = None
    #: Pods of each waiting group a pass sees even when none fits now (a reserving
    #: policy reserves nodes for them).
    queue_heads: int = 0
    #: What the policy may take back after a pass (None: it never preempts).
    preemption: PreemptionSettings | None = None
    #: None when the policy runs as named; otherwise what runs in place of a part that
    #: could not be loaded, and why (shown as ``binpack: <file>: no such checkpoint file``).
    fallback: ScorerFallback | None = None

    @property
    def fallback_part(self) -> str:
        """What runs in place of the part that could not be loaded (``binpack``), or ""."""
        return "" if self.fallback is None else self.fallback.replacement.value


@dataclass(frozen=True, init=False)
class ModelOptions:
    """Where the learned policies (``dqn``, ``hybrid``) take their model from."""

    #: DQN checkpoint; None means the model shipped in the package.
    path: Path | None
    #: ``NONE``: an unusable checkpoint raises; ``BINPACK``: the binpack scorer replaces it.
    fallback: ModelFallback

    def __init__(
        self, path: Path | None = None, fallback: ModelFallback | str = ModelFallback.NONE
    ) -> None:
        """``fallback`` may be given as the settings spell it (``none``, ``binpack``); a
        ValueError names any other value."""
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "fallback", ModelFallback.parse(fallback))


PolicyFactory = Callable[[np.random.Generator], Policy]
_REGISTRY: dict[str, tuple[str, PolicyFactory]] = {}
#: The registered policies that reserve (fair order, reservations, backfill), in
#: registration order: :func:`override_reservation` changes their settings.
_RESERVING: list[str] = []


class UnknownPolicyError(ValueError):
    """A policy name that is not registered."""


def register(
    name: str, description: str, *, reserves: bool = False
) -> Callable[[PolicyFactory], PolicyFactory]:
    """Decorator adding a policy factory to the registry under ``name``; ``reserves``: its
    policies are built by :func:`reserving_policy`."""

    def decorate(factory: PolicyFactory) -> PolicyFactory:
        _REGISTRY[name] = (description, factory)
        if reserves:
            _RESERVING.append(name)
        return factory

    return decorate


def policy_names() -> list[str]:
    """Every registered policy name, in registration order."""
    return list(_REGISTRY)


def reserving_policy_names() -> list[str]:
    """The registered policies whose reservation settings may be changed."""
    return list(_RESERVING)


def describe(name: str) -> str:
    """One line saying what policy ``name`` does."""
    return _REGISTRY[name][0]


def build_policy(name: str, rng: np.random.Generator, model: ModelOptions | None = None) -> Policy:
    """Instantiate policy ``name``; random choices it makes come from ``rng``.

    ``model`` says where ``dqn`` and ``hybrid`` load their scorer from (default: the
    shipped model, no fallback); other policies ignore it. An unusable checkpoint raises
    :class:`~hybrid_policy.dqn.checkpoint.CheckpointError` unless ``model`` falls back.
    """
    entry = _REGISTRY.get(name)
    if entry is None:
        known = ", ".join(policy_names())
        raise UnknownPolicyError(f"unknown policy {name!r} (known: {known})")
    if model is not None and name in _LEARNED:
        return _LEARNED[name](model)
    return entry[1](rng)


def parse_policy_list(text: str) -> list[str]:
    """Split a comma-separated list of policy names and check each one."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise UnknownPolicyError("no policy named (give e.g. kube-default,binpack)")
    for name in names:
        if name not in _REGISTRY:
            known = ", ".join(policy_names())
            raise UnknownPolicyError(f"unknown policy {name!r} (known: {known})")
    return names


def default_filters() -> list[FilterPlugin]:
    """The filters every policy applies, in kube-scheduler's order as far as it matters."""
    return [
        NodeReady(),
        NodeUnschedulable(),
        NodeAffinity(),
        TaintToleration(),
        NodePorts(),
        NodeResourcesFit(),
        PodTopologySpread(),
        InterPodAffinity(),
    ]


def kube_preference_scorers() -> list[tuple[ScorePlugin, float]]:
    """kube-scheduler's scores for pods' stated preferences, at its default weights; each
    scores only the pods that state such a preference (or that placed pods' terms select)."""
    return [
        (NodeAffinityScore(), 2.0),
        (InterPodAffinityScore(), 2.0),
        (PodTopologySpreadScore(), 2.0),
    ]


def _profile(
    name: str,
    scorers: Sequence[tuple[ScorePlugin, float]],
    *,
    queue_sort: QueueSortPlugin | None = None,
    arbitrator: Arbitrator | None = None,
    needs_utilisation: bool = False,
    gang_aware: bool = False,
) -> SchedulingProfile:
    return SchedulingProfile(
        name=name,
        queue_sort=queue_sort or PrioritySort(),
        filters=default_filters(),
        scorers=scorers,
        arbitrator=arbitrator or SequentialArbitrator(),
        needs_utilisation=needs_utilisation,
        gang_aware=gang_aware,
    )


@register(
    "kube-default", "kube-scheduler defaults: FIFO by priority, LeastAllocated + BalancedAllocation"
)
def kube_default(rng: np.random.Generator) -> Policy:
    """kube-scheduler's default profile."""
    scorers: list[tuple[ScorePlugin, float]] = [
        (LeastAllocated(), 1.0),
        (BalancedAllocation(), 1.0),
        *kube_preference_scorers(),
    ]
    return Policy("kube-default", describe("kube-default"), _profile("kube-default", scorers))


@register("binpack", "MostAllocated on GPU (weight 5), CPU and memory: keep whole nodes free")
def binpack(rng: np.random.Generator) -> Policy:
    """Bin packing, GPUs weighted so that large jobs find whole free nodes."""
    scorers: list[tuple[ScorePlugin, float]] = [(binpack_scorer(), 1.0)]
    return Policy("binpack", describe("binpack"), _profile("binpack", scorers))


@register("binpack-gang", "binpack, and a gang's pods placed all at once or not at all")
def binpack_gang(rng: np.random.Generator) -> Policy:
    """Bin packing with the all-or-nothing rule for gangs (Coscheduling's promise)."""
    scorers: list[tuple[ScorePlugin, float]] = [(binpack_scorer(), 1.0)]
    profile = _profile("binpack-gang", scorers, gang_aware=True)
    return Policy("binpack-gang", describe("binpack-gang"), profile)


@register("load-aware", "Trimaran TargetLoadPacking on live GPU (80%) and CPU (40%) utilisation")
def load_aware(rng: np.random.Generator) -> Policy:
    """Load-aware packing from live metrics, as Trimaran does."""
    scorers: list[tuple[ScorePlugin, float]] = [(TargetLoadPacking(), 1.0)]
    profile = _profile("load-aware", scorers, needs_utilisation=True)
    return Policy("load-aware", describe("load-aware"), profile)


@register("drf", "weighted dominant resource fairness across namespaces, LeastAllocated nodes")
def drf(rng: np.random.Generator) -> Policy:
    """DRF ordering across namespaces with kube-scheduler's node scoring."""
    scorers: list[tuple[ScorePlugin, float]] = [
        (LeastAllocated(), 1.0),
        (BalancedAllocation(), 1.0),
        *kube_preference_scorers(),
    ]
    profile = _profile("drf", scorers, arbitrator=DrfArbitrator())
    return Policy("drf", describe("drf"), profile)


@register("random", "FIFO queue, a uniformly random feasible node")
def random_policy(rng: np.random.Generator) -> Policy:
    """The floor: any feasible node."""
    scorers: list[tuple[ScorePlugin, float]] = [(RandomScore(rng), 1.0)]
    return Policy("random", describe("random"), _profile("random", scorers))


@register(
    "srtf-oracle", "preemptive shortest-remaining-time-first on the fastest nodes (knows run times)"
)
def srtf_oracle(rng: np.random.Generator) -> Policy:
    """Lower-bound proxy: re-plans every pod on each event, shortest remaining first."""
    scorers: list[tuple[ScorePlugin, float]] = [(NodePerformance(), 1.0)]
    profile = _profile("srtf-oracle", scorers, queue_sort=ShortestRemainingFirst(), gang_aware=True)
    return Policy(
        "srtf-oracle", describe("srtf-oracle"), profile, preemptive=True, clairvoyant=True
    )


@register("game", "potential-game equilibrium across namespaces, binpack node scores")
def game(rng: np.random.Generator) -> Policy:
    """Contention between namespaces settled at the game's equilibrium (docs/game.md)."""
    from hybrid_policy.game import GameArbitrator  # imports cvxpy: only when asked for

    scorers: list[tuple[ScorePlugin, float]] = [(binpack_scorer(), 1.0)]
    profile = _profile("game", scorers, arbitrator=GameArbitrator(), gang_aware=True)
    return Policy("game", describe("game"), profile)


def scored_policy(name: str, scorer: ScorePlugin) -> Policy:
    """A policy with the default framework and ``scorer`` as its only Score plugin."""
    profile = _profile(name, [(scorer, 1.0)], needs_utilisation=True)
    description = describe(name) if name in _REGISTRY else name
    return Policy(name, description, profile)


def _learned_scorer(model: ModelOptions) -> tuple[ScorePlugin, ScorerFallback | None]:
    from hybrid_policy.dqn.scorer import load_scorer_or_fallback

    scorer, problem = load_scorer_or_fallback(model.path, model.fallback)
    return scorer, None if problem is None else ScorerFallback(model.fallback, str(problem))


def dqn_policy(model: ModelOptions) -> Policy:
    """The ``dqn`` policy with its scorer from ``model``."""
    scorer, fallback = _learned_scorer(model)
    profile = _profile("dqn", [(scorer, 1.0)], needs_utilisation=True)
    return Policy("dqn", describe("dqn"), profile, fallback=fallback)


#: Weight of the binpack score next to the DQN's (weight 1) in the ``hybrid`` policy.
HYBRID_BINPACK_WEIGHT = 1.0


def hybrid_policy(model: ModelOptions) -> Policy:
    """The ``hybrid`` policy with its scorer from ``model``."""
    from hybrid_policy.game import GameArbitrator

    scorer, fallback = _learned_scorer(model)
    # The scorer learnt its placements under queue-order arbitration; under the arbiter's
    # fill, the binpack term keeps whole nodes for wide pods (docs/benchmarks.md).
    scorers: list[tuple[ScorePlugin, float]] = [
        (scorer, 1.0),
        (binpack_scorer(), HYBRID_BINPACK_WEIGHT),
    ]
    profile = _profile(
        "hybrid", scorers, arbitrator=GameArbitrator(), needs_utilisation=True, gang_aware=True
    )
    return Policy("hybrid", describe("hybrid"), profile, fallback=fallback)


@register("dqn", "learned DQN node scorer (the shipped model), default framework otherwise")
def dqn(rng: np.random.Generator) -> Policy:
    """The DQN scorer loaded from the checkpoint shipped in the package."""
    return dqn_policy(ModelOptions())


@register(
    "hybrid", "DQN node scores plus binpack, contention between namespaces settled by the game"
)
def hybrid(rng: np.random.Generator) -> Policy:
    """The learned scorer recommends, the potential game settles contention (docs/game.md)."""
    return hybrid_policy(ModelOptions())


#: Policies whose scorer is a model that :class:`ModelOptions` can point elsewhere.
_LEARNED: dict[str, Callable[[ModelOptions], Policy]] = {"dqn": dqn_policy, "hybrid": hybrid_policy}


def reserving_policy(
    name: str,
    scorers: Sequence[tuple[ScorePlugin, float]],
    settings: ReservationSettings,
    needs_utilisation: bool = False,
) -> Policy:
    """Fair order, reservation and backfill with run-time predictions (docs/reservation.md)."""
    predictor = RuntimePredictor()
    arbitrator = ReservingArbitrator(predictor, settings)
    profile = _profile(
        name, scorers, arbitrator=arbitrator, needs_utilisation=needs_utilisation, gang_aware=True
    )
    description = describe(name) if name in _REGISTRY else name
    return Policy(name, description, profile, predictor=predictor, queue_heads=settings.bound)


def override_reservation(policy: Policy, text: str) -> Policy | None:
    """``policy`` with its reservation settings changed by ``text`` (``key=value`` pairs,
    see :meth:`ReservationSettings.overridden`, which raises ValueError naming a bad key or
    value); None when it does not reserve."""
    arbitrator = policy.profile.arbitrator
    if not isinstance(arbitrator, ReservingArbitrator):
        return None
    arbitrator.settings = arbitrator.settings.overridden(text)
    arbitrator.name = f"fair-{arbitrator.settings.mode.value}"
    return replace(policy, queue_heads=arbitrator.settings.bound)


def _binpack_reserving(name: str, mode: BackfillMode) -> Policy:
    return reserving_policy(name, [(binpack_scorer(), 1.0)], ReservationSettings(mode=mode))


@register(
    "fair-order",
    "fair order (weighted DRF across namespaces, ageing), binpack scores",
    reserves=True,
)
def fair_order(rng: np.random.Generator) -> Policy:
    """The reservation ablation's base: fair order alone, a pod that fits nowhere skipped."""
    return _binpack_reserving("fair-order", BackfillMode.NONE)


@register(
    "fair-reserve",
    "fair order + one reservation (its node closed to others), binpack",
    reserves=True,
)
def fair_reserve(rng: np.random.Generator) -> Policy:
    """Fair order, and the node of the pod whose turn it is reserved for it alone."""
    return _binpack_reserving("fair-reserve", BackfillMode.RESERVE)


@register(
    "fair-easy",
    "fair order + one reservation + EASY backfill (predicted), binpack",
    reserves=True,
)
def fair_easy(rng: np.random.Generator) -> Policy:
    """Fair order, one reservation, and pods that do not delay it backfilled."""
    return _binpack_reserving("fair-easy", BackfillMode.EASY)


@register(
    "fair-conservative",
    "fair order + a reservation per waiting pod that fits nowhere, binpack",
    reserves=True,
)
def fair_conservative(rng: np.random.Generator) -> Policy:
    """Fair order, up to four reservations, backfill that delays none of them."""
    return _binpack_reserving("fair-conservative", BackfillMode.CONSERVATIVE)


#: The node-speed term's weight next to binpack in ``fair-speed`` (chosen on the Philly
#: tuning trace, ``philly-train``, seed 0: docs/benchmarks.md).
SPEED_WEIGHT = 3.0


@register(
    "fair-speed",
    "fair order (a pod that fits nowhere skipped), binpack + node speed",
    reserves=True,
)
def fair_speed(rng: np.random.Generator) -> Policy:
    """``fair-order`` whose placements also prefer fast nodes: on the Philly trace's mixed
    node speeds, packing alone ran the same jobs on slower nodes (docs/benchmarks.md)."""
    scorers: list[tuple[ScorePlugin, float]] = [
        (binpack_scorer(), 1.0),
        (NodePerformance(), SPEED_WEIGHT),
    ]
    return reserving_policy("fair-speed", scorers, ReservationSettings(mode=BackfillMode.NONE))


#: Backfill mode of ``hybrid-reserve`` (chosen on tuning seeds 0-9, docs/benchmarks.md).
HYBRID_RESERVE_MODE = BackfillMode.EASY


def hybrid_reserve_with(scorer: ScorePlugin) -> Policy:
    """``hybrid-reserve`` with ``scorer`` as its learned score (training runs it with the
    network it is training)."""
    scorers: list[tuple[ScorePlugin, float]] = [
        (scorer, 1.0),
        (binpack_scorer(), HYBRID_BINPACK_WEIGHT),
    ]
    settings = ReservationSettings(HYBRID_RESERVE_MODE)
    return reserving_policy("hybrid-reserve", scorers, settings, needs_utilisation=True)


def hybrid_reserve_policy(model: ModelOptions) -> Policy:
    """The ``hybrid-reserve`` policy with its scorer from ``model``."""
    scorer, fallback = _learned_scorer(model)
    return replace(hybrid_reserve_with(scorer), fallback=fallback)


@register(
    "hybrid-reserve",
    "DQN + binpack scores, fair order, reservation and backfill from run-time predictions",
    reserves=True,
)
def hybrid_reserve(rng: np.random.Generator) -> Policy:
    """Fair across teams and fast for wide pods: reservations from predicted run times."""
    return hybrid_reserve_policy(ModelOptions())


_LEARNED["hybrid-reserve"] = hybrid_reserve_policy
