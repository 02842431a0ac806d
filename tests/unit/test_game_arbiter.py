"""The game arbitrator on whole pods: capacity, work conservation, shares, fallback."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builders import make_node, make_pod
from game_builders import arbitrate, contention, placed_pods
from hybrid_policy.domain import Namespace, NodeInfo, PendingPod
from hybrid_policy.framework.paths import FallbackReason, SolverPath
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.game import (
    ContentionProblem,
    Equilibrium,
    GameArbitrator,
    GameSettings,
    PotentialProgram,
)
from hybrid_policy.game.arbiter import SOLVE_TIMES_KEPT
from hybrid_policy.game.problem import copies_that_fit
from hybrid_policy.game.program import game_path
from hybrid_policy.policies import build_policy

batches = st.lists(
    st.tuples(st.sampled_from([1, 2, 4, 8]), st.integers(1, 24), st.sampled_from("abc")),
    min_size=2,
    max_size=30,
)


def cluster() -> list[NodeInfo]:
    return [
        make_node("a", gpus=8),
        make_node("b", gpus=4, cpu=32, memory_gib=256),
        make_node("c", gpus=8, performance=60.0),
    ]


@settings(max_examples=15, deadline=None)
@given(pods=batches, weight=st.floats(0.5, 3.0))
def test_capacity_holds_and_the_pass_is_work_conserving(
    pods: list[tuple[int, int, str]], weight: float
) -> None:
    batch = [
        make_pod(f"p{i}", gpus=g, cpu=c, memory_gib=8 * g, namespace=ns, created_at_s=i)
        for i, (g, c, ns) in enumerate(pods)
    ]
    decisions, cycle, arbitrator = arbitrate(cluster(), batch, {"a": 1.0, "b": weight, "c": 2.0})
    # The pass is settled by the solver or needs no settling: never by the fallback.
    (path,) = arbitrator.paths
    assert path.solver in (SolverPath.EQUILIBRIUM, SolverPath.UNCONTENDED)
    assert {d.pass_path for d in decisions} == {path}
    snap = cycle.snapshot
    assert sorted(d.pod.uid for d in decisions) == sorted(p.uid for p in batch)
    assert np.all(snap.requested <= snap.allocatable + 1e-9)
    rows = np.arange(len(snap), dtype=np.int64)
    for d in decisions:
        if not d.placed:  # work conserving: nothing left idle that this pod could use
            assert copies_that_fit(snap, snap.request_vector(d.pod), rows).sum() == 0


def test_pods_of_a_class_are_placed_in_queue_order() -> None:
    batch = [
        make_pod(f"{ns}{i}", gpus=2, namespace=ns, created_at_s=i) for i in range(12) for ns in "ab"
    ]
    decisions, _, arbitrator = arbitrate(cluster(), batch, {"a": 1.0, "b": 1.0})
    assert arbitrator.paths[game_path(SolverPath.EQUILIBRIUM)] == 1
    for ns in "ab":
        placed = [d.pod.created_at_s for d in decisions if d.placed and d.pod.namespace == ns]
        left = [d.pod.created_at_s for d in decisions if not d.placed and d.pod.namespace == ns]
        assert placed and left and max(placed) < min(left)


@pytest.mark.parametrize("owners", ["ab", "abc", "abcd"])
def test_identical_namespaces_get_equal_whole_pod_shares(owners: str) -> None:
    nodes = [make_node(f"n{i}", gpus=8) for i in range(3)]  # 24 GPUs
    batch = [
        make_pod(f"{ns}{i}", gpus=1, cpu=1, memory_gib=1, namespace=ns, created_at_s=i)
        for i in range(20)
        for ns in owners
    ]
    decisions, _, arbitrator = arbitrate(nodes, batch, dict.fromkeys(owners, 1.0))
    assert arbitrator.paths == {game_path(SolverPath.EQUILIBRIUM): 1}
    counts = [placed_pods(decisions, ns) for ns in owners]
    assert sum(counts) == 24
    assert max(counts) - min(counts) <= 1


def test_weights_decide_whole_pod_shares() -> None:
    nodes = [make_node(f"n{i}", gpus=8) for i in range(3)]
    batch = [
        make_pod(f"{ns}{i}", gpus=1, cpu=1, memory_gib=1, namespace=ns, created_at_s=i)
        for i in range(30)
        for ns in "ab"
    ]
    decisions, _, arbitrator = arbitrate(nodes, batch, {"a": 1.0, "b": 2.0})
    assert arbitrator.paths == {game_path(SolverPath.EQUILIBRIUM): 1}
    assert (placed_pods(decisions, "a"), placed_pods(decisions, "b")) == (8, 16)


def test_deficits_stay_within_one_pod() -> None:
    nodes = [make_node("n0", gpus=8)]
    batch = [make_pod(f"{ns}{i}", gpus=2, namespace=ns) for i in range(8) for ns in "abc"]
    _, _, arbitrator = arbitrate(nodes, batch, dict.fromkeys("abc", 1.0))
    assert arbitrator.paths == {game_path(SolverPath.EQUILIBRIUM): 1}
    assert set(arbitrator.deficit_share) == set("abc")
    for value in arbitrator.deficit_share.values():
        assert abs(value) <= 2 / 8 + 1e-9


def contended_batch() -> list[PendingPod]:
    return [make_pod(f"{ns}{i}", gpus=2, namespace=ns) for i in range(10) for ns in "ab"]


def test_solver_error_takes_the_recorded_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: PotentialProgram, problem: object) -> None:
        raise RuntimeError("solver crashed")

    monkeypatch.setattr(PotentialProgram, "solve", broken)
    decisions, cycle, arbitrator = arbitrate(cluster(), contended_batch(), {"a": 1.0, "b": 1.0})
    path = game_path(SolverPath.FALLBACK, FallbackReason.ERROR, "RuntimeError")
    assert arbitrator.paths[path] == 1
    assert {d.pass_path for d in decisions} == {path}
    assert {d.path for d in decisions} == {"greedy-fallback:error-RuntimeError"}
    assert np.all(cycle.snapshot.requested <= cycle.snapshot.allocatable)
    assert placed_pods(decisions, "a") == placed_pods(decisions, "b") == 5


def test_a_solve_over_the_time_budget_takes_the_fallback() -> None:
    tiny = GameSettings(time_budget_s=1e-6)
    decisions, _, arbitrator = arbitrate(cluster(), contended_batch(), {"a": 1.0, "b": 1.0}, tiny)
    paths = {d.pass_path for d in decisions}
    assert paths == {game_path(SolverPath.FALLBACK, FallbackReason.TIMEOUT)}
    assert {d.path for d in decisions} == {"greedy-fallback:timeout"}
    assert sum(arbitrator.paths.values()) == 1
    assert not arbitrator.last_equilibrium.solved  # type: ignore[union-attr]


def test_an_uncontended_pass_is_placed_in_queue_order() -> None:
    batch = [make_pod(f"{ns}{i}", gpus=1, namespace=ns) for i in range(2) for ns in "ab"]
    decisions, _, arbitrator = arbitrate(cluster(), batch, {"a": 1.0, "b": 1.0})
    assert arbitrator.paths == {game_path(SolverPath.UNCONTENDED): 1}
    assert all(d.placed and d.path == "uncontended" for d in decisions)


def test_deficit_counters_share_a_single_slot_over_rounds() -> None:
    """One free GPU per pass, two identical namespaces: the pods alternate."""
    policy = build_policy("game", np.random.default_rng(0))
    arbitrator = GameArbitrator(GameSettings(time_budget_s=None))
    policy.profile.arbitrator = arbitrator
    snapshot = ClusterSnapshot([make_node("n0", gpus=1)], [Namespace("a"), Namespace("b")])
    winners = []
    for round_ in range(10):
        batch = [make_pod(f"{ns}{round_}", gpus=1, namespace=ns) for ns in "ab"]
        decisions = policy.profile.schedule_batch(batch, snapshot, np.random.default_rng(0))
        placed = [d for d in decisions if d.placed]
        assert len(placed) == 1 and placed[0].pass_path.solver is SolverPath.EQUILIBRIUM
        winners.append(placed[0].pod.namespace)
        snapshot.forget(placed[0].pod)  # the pod finishes before the next pass
    assert winners.count("a") == winners.count("b") == 5


def test_the_wall_clock_comes_back_with_the_configured_budget() -> None:
    arbitrator = GameArbitrator(GameSettings(time_budget_s=0.5))
    arbitrator.use_wall_clock(False)
    assert arbitrator.settings.time_budget_s is None
    arbitrator.use_wall_clock(True)
    assert arbitrator.settings.time_budget_s == 0.5


def test_solve_times_keep_the_latest_window_and_count_every_solve(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    problem, arbitrator = contention(cluster(), contended_batch(), {"a": 1.0, "b": 1.0})
    seconds = iter(range(SOLVE_TIMES_KEPT + 5))

    def instant(problem: ContentionProblem) -> Equilibrium:
        empty = np.zeros(problem.slot_class.size)
        return Equilibrium(
            empty, "optimal", float(next(seconds)), game_path(SolverPath.EQUILIBRIUM)
        )

    monkeypatch.setattr(arbitrator.program, "solve", instant)
    for _ in range(SOLVE_TIMES_KEPT + 5):
        arbitrator.equilibrium(problem)
    assert arbitrator.solves == SOLVE_TIMES_KEPT + 5
    assert list(arbitrator.solve_seconds) == [float(s) for s in range(5, SOLVE_TIMES_KEPT + 5)]
