import dataclasses

import numpy as np

from builders import make_node, make_pod
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.policies import build_policy
from hybrid_policy.resources import GPU
from hybrid_policy.scenario.loader import load_scenario
from hybrid_policy.scenario.model import MetricsSpec
from hybrid_policy.scenario.workload import prepare_workload
from hybrid_policy.sim.engine import Simulation
from hybrid_policy.sim.signal import UtilisationSignal


def test_metrics_lag_by_the_delay_and_count_recent_pods_from_requests() -> None:
    snap = ClusterSnapshot([make_node("a", gpus=8), make_node("b", gpus=8)])
    signal = UtilisationSignal(
        snap, MetricsSpec(scrape_interval_s=15, delay_s=30, noise=0.0), np.random.default_rng(0)
    )
    gpu = snap.index[GPU]
    request = snap.request_vector(make_pod("p", gpus=4))
    used = request * 0.5  # the pod uses half of what it asked for
    signal.change(100.0, 0, used, request)

    signal.refresh(snap, 110.0)  # the scrape seen is from t=75: the pod only by its request
    assert snap.utilisation[0, gpu] == 0.5
    assert snap.utilisation_age_s[0] == 110.0 - 75.0

    signal.refresh(snap, 200.0)  # scrape from t=165 shows real usage; request no longer added
    assert snap.utilisation[0, gpu] == 0.25
    assert snap.utilisation[1, gpu] == 0.0

    signal.change(300.0, 0, -used, None)
    signal.refresh(snap, 320.0)  # the pod left at 300, but metrics still show t=285
    assert snap.utilisation[0, gpu] == 0.25
    signal.refresh(snap, 400.0)
    assert snap.utilisation[0, gpu] == 0.0


def test_noise_is_added_and_seeded() -> None:
    def read(seed: int) -> float:
        snap = ClusterSnapshot([make_node("a")])
        signal = UtilisationSignal(snap, MetricsSpec(noise=0.05), np.random.default_rng(seed))
        signal.refresh(snap, 1000.0)
        return float(snap.utilisation[0, snap.index[GPU]])

    assert read(1) == read(1)
    assert read(1) != read(2)


def test_batched_passes_start_pods_only_on_the_interval(tiny_scenario_path: object) -> None:
    scenario = dataclasses.replace(load_scenario(str(tiny_scenario_path)), schedule_interval_s=60.0)
    workload = prepare_workload(scenario, "light", 3)
    sim = Simulation(workload, build_policy("kube-default", np.random.default_rng(0)), 3)
    result = sim.run()
    assert not np.isnan(result.end_s).any()
    assert np.allclose(np.mod(result.start_s, 60.0), 0.0)
    eager = dataclasses.replace(
        workload, scenario=dataclasses.replace(scenario, schedule_interval_s=0.0)
    )
    eager_result = Simulation(
        eager, build_policy("kube-default", np.random.default_rng(0)), 3
    ).run()
    assert not np.allclose(np.mod(eager_result.start_s, 60.0), 0.0)
    assert np.mean(result.start_s - result.submit_s) > np.mean(
        eager_result.start_s - eager_result.submit_s
    )
