import numpy as np
import pytest

from hybrid_lab.demo import demo_jobs
from hybrid_lab.demo_prediction import comparison, demo_workload, mean_jct_s, predict


def test_the_simulated_jobs_are_the_demo_jobs_at_the_same_compression() -> None:
    jobs = demo_jobs(20, 10, 60.0)
    workload = demo_workload(20, 10, 60.0, uniform=True)
    assert [j.submit_s / 60.0 for j in workload.jobs] == pytest.approx([j.submit_s for j in jobs])
    assert [j.runtime_s / 60.0 for j in workload.jobs] == [j.runtime_s for j in jobs]
    assert {n.performance for n in workload.nodes} == {100.0}
    aware = demo_workload(20, 10, 60.0, uniform=False)
    assert len({n.performance for n in aware.nodes}) > 1


def test_with_uniform_speed_no_job_finishes_before_its_run_time() -> None:
    workload = demo_workload(30, 10, 60.0, uniform=True)
    runtimes = np.array([j.runtime_s for j in workload.jobs]) / 60.0
    assert mean_jct_s(workload, "kube-default", 10, 60.0) >= runtimes.mean() - 1e-9


def test_slower_nodes_make_jobs_longer_and_the_baseline_ratio_is_one() -> None:
    uniform = predict(30, 10, 60.0, "kube-default", uniform=True)
    aware = predict(30, 10, 60.0, "kube-default", uniform=False)
    assert uniform.ratio == pytest.approx(1.0)
    assert aware.baseline_s > uniform.baseline_s  # performance 50-100 is at most 100
    table = comparison(12.0, 10.0, {"predicted": uniform})
    assert "1.200" in table
