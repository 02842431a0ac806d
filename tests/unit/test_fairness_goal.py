"""The goal region of the fairness figure: the best heuristic's mean JCT, never another
policy's."""

from hybrid_lab.plots import best_heuristic


def test_the_goal_is_the_lowest_mean_jct_among_the_heuristics() -> None:
    mean_jct = {"kube-default": 23.4, "binpack": 20.2, "load-aware": 23.3, "drf": 66.8}
    assert best_heuristic(mean_jct) == ("binpack", 20.2)


def test_learned_reserving_and_clairvoyant_policies_never_set_the_goal() -> None:
    mean_jct = {"drf": 30.0, "srtf-oracle": 13.3, "dqn": 20.6, "hybrid-reserve": 19.4}
    assert best_heuristic(mean_jct) == ("drf", 30.0)


def test_no_goal_without_a_heuristic() -> None:
    assert best_heuristic({"dqn": 20.6, "hybrid": 30.5}) is None
