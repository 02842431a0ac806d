"""The potential game's equilibrium: fairness properties and the unilateral-deviation gap."""

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from builders import make_node, make_pod
from game_builders import contention
from hybrid_policy.domain import PendingPod
from hybrid_policy.game import GameSettings, PotentialProgram
from hybrid_policy.game.deviation import deviation_gap
from hybrid_policy.game.program import potential

#: Fairness alone: no score tilt, no congestion, so shares can be compared exactly.
PURE = GameSettings(score_weight=0.0, congestion_weight=0.0, time_budget_s=None)
SHARE_TOLERANCE = 1e-3
#: Same examples on every run (CI must not meet a new hard program by chance).
PROPERTY = settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.filter_too_much],
)


def one_gpu_pods(namespace: str, count: int) -> list[PendingPod]:
    return [
        make_pod(f"{namespace}-{i}", gpus=1, cpu=1, memory_gib=1, namespace=namespace)
        for i in range(count)
    ]


def gpu_shares(
    weights: dict[str, float], demand: dict[str, int], nodes: int = 4
) -> dict[str, float]:
    cluster = [make_node(f"n{i}", gpus=8) for i in range(nodes)]
    pods = [p for ns, n in demand.items() for p in one_gpu_pods(ns, n)]
    problem, _ = contention(cluster, pods, weights, PURE)
    equilibrium = PotentialProgram(PURE).solve(problem)
    # Clarabel reports "optimal_inaccurate" on a few drawn programs; the arbiter takes its
    # fallback there (tested elsewhere), so properties of the equilibrium are checked on
    # the programs it did solve.
    assume(equilibrium.solved)
    served = problem.served_share(equilibrium.allocation)
    return {ns: float(served[i]) for i, ns in enumerate(problem.namespaces)}


def test_identical_namespaces_get_equal_shares() -> None:
    cluster = [make_node(f"n{i}", gpus=8) for i in range(4)]
    pods = [p for ns in "abc" for p in one_gpu_pods(ns, 30)]
    problem, _ = contention(cluster, pods, {"a": 1.0, "b": 1.0, "c": 1.0}, PURE)
    equilibrium = PotentialProgram(PURE).solve(problem)
    assert equilibrium.solved
    served = problem.served_share(equilibrium.allocation)
    shares = {ns: float(served[i]) for i, ns in enumerate(problem.namespaces)}
    assert abs(shares["a"] - shares["b"]) < SHARE_TOLERANCE
    assert abs(shares["b"] - shares["c"]) < SHARE_TOLERANCE
    assert abs(sum(shares.values()) - 1.0) < SHARE_TOLERANCE  # all 32 GPUs given out


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.filter_too_much],
)
@given(
    weight=st.floats(0.5, 3.0),
    raise_by=st.floats(0.1, 3.0),
    demand=st.lists(st.integers(1, 40), min_size=3, max_size=3),
)
def test_raising_a_weight_never_lowers_the_share(
    weight: float, raise_by: float, demand: list[int]
) -> None:
    ask = dict(zip("abc", demand, strict=True))
    before = gpu_shares({"a": weight, "b": 1.0, "c": 2.0}, ask)
    after = gpu_shares({"a": weight + raise_by, "b": 1.0, "c": 2.0}, ask)
    assert after["a"] >= before["a"] - SHARE_TOLERANCE


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.filter_too_much],
)
@given(
    weights=st.lists(st.floats(0.5, 3.0), min_size=3, max_size=3),
    demand=st.lists(st.integers(1, 40), min_size=3, max_size=3),
)
def test_sharing_incentive(weights: list[float], demand: list[int]) -> None:
    """Each namespace gets at least min(its demand, its weighted share of capacity)."""
    w = dict(zip("abc", weights, strict=True))
    ask = dict(zip("abc", demand, strict=True))
    shares = gpu_shares(w, ask)
    for ns in "abc":
        entitled = min(ask[ns] / 32, w[ns] / sum(weights))
        assert shares[ns] >= entitled - SHARE_TOLERANCE


@settings(max_examples=6, deadline=None, derandomize=True)
@given(
    gpus=st.lists(st.sampled_from([1, 2, 4, 8]), min_size=4, max_size=24),
    owners=st.lists(st.sampled_from("abcd"), min_size=24, max_size=24),
    weights=st.lists(st.floats(0.5, 3.0), min_size=4, max_size=4),
    score_weight=st.sampled_from([0.0, 0.1, 1.0]),
)
def test_no_namespace_gains_by_deviating_alone(
    gpus: list[int], owners: list[str], weights: list[float], score_weight: float
) -> None:
    game = GameSettings(score_weight=score_weight, congestion_weight=0.05, time_budget_s=None)
    cluster = [make_node("a", gpus=8), make_node("b", gpus=4, cpu=32), make_node("c", gpus=8)]
    pods = [
        make_pod(f"p{i}", gpus=g, cpu=2 * g, memory_gib=16 * g, namespace=owners[i])
        for i, g in enumerate(gpus)
    ]
    problem, _ = contention(cluster, pods, dict(zip("abcd", weights, strict=True)), game)
    equilibrium = PotentialProgram(game).solve(problem)
    assert equilibrium.solved, equilibrium.status
    gap = deviation_gap(problem, equilibrium.allocation, game)
    # A player squeezed to nothing by the others can leave Clarabel "optimal_inaccurate".
    assert set(gap.statuses) <= {"optimal", "optimal_inaccurate"}
    assert gap.worst < 1e-4


def test_equilibrium_maximises_the_potential_over_the_fallback() -> None:
    game = GameSettings(time_budget_s=None)
    cluster = [make_node(f"n{i}", gpus=8) for i in range(3)]
    pods = [
        make_pod(f"{ns}{i}", gpus=g, cpu=2, memory_gib=8, namespace=ns)
        for ns, g in (("a", 1), ("b", 2), ("c", 4))
        for i in range(10)
    ]
    problem, _ = contention(cluster, pods, {"a": 1.0, "b": 1.0, "c": 2.0}, game)
    from hybrid_policy.game.fallback import greedy_allocation

    solved = PotentialProgram(game).solve(problem).allocation
    greedy = greedy_allocation(problem)
    assert potential(problem, solved, game) >= potential(problem, greedy, game) - 1e-6
    assert np.all(problem.node_load_fraction(solved) <= problem.node_free_fraction + 1e-6)
