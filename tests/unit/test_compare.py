"""The peers' comparison without a cluster: the job stream as Jobs and PodGroups, each
scheduler's configuration for weighted teams, and the figures from recorded pods."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import cast

import pytest

from hybrid_lab.clusterbench.apimetrics import CallKey
from hybrid_lab.clusterbench.compare import configs, report, rounds, schedulers, stream
from hybrid_lab.clusterbench.compare.configs import SchedulerKind
from hybrid_lab.clusterbench.compare.jobwatch import PodSeen
from hybrid_lab.clusterbench.compare.metrics import JobOutcome, partial_gang_gpu_s, round_metrics
from hybrid_lab.clusterbench.compare.prediction import Prediction
from hybrid_lab.clusterbench.compare.rounds import calls_per_pod, job_outcomes
from hybrid_lab.clusterbench.compare.stream import StreamJob, Team
from hybrid_lab.clusterbench.schedulers import ClientLimits
from hybrid_lab.devcluster import cluster as devcluster_cluster
from hybrid_lab.devcluster.apiserver import ApiServer
from hybrid_lab.devcluster.settings import ClusterSettings
from hybrid_lab.devcluster.state import ClusterState, ProcessRecord
from hybrid_policy.resources import CPU, GIB, GPU, MEMORY
from hybrid_policy.scenario.jobs import Job
from hybrid_policy.scenario.loader import load_scenario

REQUESTS = {GPU: 8, CPU: 32_000, MEMORY: 512 * GIB}
TEAMS = [Team("team-a", 1), Team("team-b", 1), Team("team-c", 2), Team("team-d", 1)]
SEED_PAPER_CAPACITY = {GPU: 80, CPU: 640_000, MEMORY: 5120 * GIB}
LIMITS = ClientLimits(qps=50, burst=100, batch_interval_s=1.0, batch_size=500)


def job(job_id: int, submit_s: float, members: int = 1, team: str = "team-a") -> Job:
    return Job(job_id, submit_s, 600.0, REQUESTS, team, "nlp", {}, members)


def stream_job(
    name: str, pods: int = 1, team: str = "team-a", runtime_s: float = 10.0
) -> StreamJob:
    return StreamJob(name, team, 0.0, runtime_s, pods, {GPU: 2, CPU: 1000, MEMORY: GIB}, "nlp")


# -- the stream ---------------------------------------------------------------------------


def test_the_stream_keeps_the_first_jobs_with_times_divided_by_the_scale() -> None:
    jobs = [job(3, 1300.0), job(1, 100.0), job(2, 700.0, members=3, team="team-c")]
    chosen = stream.first_jobs(jobs, max_jobs=2)
    scaled = stream.scaled_stream(chosen, time_scale=60)
    assert [(j.name, j.team, j.pods) for j in scaled] == [
        ("job-00001", "team-a", 1),
        ("job-00002", "team-c", 3),
    ]
    assert [j.submit_s for j in scaled] == [0.0, 10.0]
    assert [j.runtime_s for j in scaled] == [10.0, 10.0]


def test_a_gang_is_one_job_of_all_its_pods_with_a_pod_group_where_the_scheduler_reads_them() -> (
    None
):
    gang = stream_job("job-00007", pods=3, team="team-c", runtime_s=12.3456)
    created = stream.manifests(gang, "hybrid", configs.expression(SchedulerKind.HYBRID))
    assert [m["kind"] for m in created] == ["PodGroup", "Job"]
    group, job_ = created
    assert group["spec"]["minMember"] == 3
    assert group["spec"]["minResources"]["nvidia.com/gpu"] == "6"
    assert group["metadata"]["namespace"] == job_["metadata"]["namespace"] == "cmp-hybrid-team-c"
    spec = job_["spec"]
    assert (spec["parallelism"], spec["completions"], spec["suspend"]) == (3, 3, False)
    template = spec["template"]
    assert template["metadata"]["labels"][stream.POD_GROUP_LABEL] == "job-00007"
    assert template["metadata"]["annotations"]["hybrid-scheduler.io/sim-runtime"] == "12346ms"
    assert template["spec"]["schedulerName"] == "compare-hybrid"
    requests = template["spec"]["containers"][0]["resources"]["requests"]
    assert requests == {"cpu": "1000m", "memory": str(GIB), "nvidia.com/gpu": "2"}


@pytest.mark.parametrize("kind", list(SchedulerKind))
def test_a_pod_taken_back_by_preemption_is_recreated_not_a_failed_job(kind: SchedulerKind) -> None:
    # CapacityScheduling and Kueue preempt; with backoffLimit 0 a victim would fail its Job.
    (job_,) = stream.manifests(stream_job("job-1"), "r", configs.expression(kind))
    spec = job_["spec"]
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["podFailurePolicy"]["rules"] == [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    ]


def test_plain_kube_scheduler_gets_the_gang_without_a_pod_group() -> None:
    gang = stream_job("job-00007", pods=3)
    created = stream.manifests(gang, "kube", configs.expression(SchedulerKind.KUBE_SCHEDULER))
    assert [m["kind"] for m in created] == ["Job"]
    assert stream.POD_GROUP_LABEL not in created[0]["spec"]["template"]["metadata"]["labels"]
    assert created[0]["spec"]["parallelism"] == 3


def test_kueue_jobs_are_created_suspended_naming_the_local_queue() -> None:
    created = stream.manifests(
        stream_job("job-1", pods=2), "kueue", configs.expression(SchedulerKind.KUEUE)
    )
    assert [m["kind"] for m in created] == ["Job"]
    body = created[0]
    assert body["spec"]["suspend"] is True
    assert body["metadata"]["labels"][stream.QUEUE_LABEL] == configs.LOCAL_QUEUE
    assert body["spec"]["template"]["spec"]["schedulerName"] == "compare-kueue"


def test_scheduler_plugins_pods_name_the_peer() -> None:
    expression = configs.expression(SchedulerKind.SCHEDULER_PLUGINS)
    assert (expression.scheduler_name, expression.pod_groups) == ("scheduler-plugins", True)


def test_team_namespaces_carry_their_weight() -> None:
    body = stream.namespace_manifest("kueue", Team("team-c", 2))
    assert body["metadata"]["name"] == "cmp-kueue-team-c"
    assert body["metadata"]["annotations"][stream.WEIGHT_ANNOTATION] == "2"


def test_the_seed_paper_teams_and_weights_are_read_from_the_scenario() -> None:
    assert stream.teams(load_scenario("seed-paper")) == TEAMS


# -- the peers' configurations ------------------------------------------------------------


def test_elastic_quota_min_is_the_weighted_share_and_max_the_cluster() -> None:
    quotas = configs.elastic_quotas("plugins", TEAMS, SEED_PAPER_CAPACITY)
    by_namespace = {q["metadata"]["namespace"]: q["spec"] for q in quotas}
    assert [by_namespace[f"cmp-plugins-{t.name}"]["min"]["nvidia.com/gpu"] for t in TEAMS] == [
        "16",
        "16",
        "32",
        "16",
    ]
    assert by_namespace["cmp-plugins-team-c"]["min"]["cpu"] == "256000m"
    for spec in by_namespace.values():
        assert spec["max"] == {"cpu": "640000m", "memory": str(5120 * GIB), "nvidia.com/gpu": "80"}


def test_shares_round_down_so_they_never_exceed_the_cluster() -> None:
    shares = configs.weighted_shares([Team("a", 1), Team("b", 1), Team("c", 1)], {GPU: 10})
    assert [s[GPU] for s in shares.values()] == [3, 3, 3]


def test_kueue_gets_a_cluster_queue_per_team_in_one_cohort_weighted_by_the_team() -> None:
    objects = configs.kueue_objects("kueue", TEAMS, SEED_PAPER_CAPACITY)
    kinds = Counter(body["kind"] for _, body in objects)
    assert kinds == {"ResourceFlavor": 1, "ClusterQueue": 4, "LocalQueue": 4}
    queues = [body for _, body in objects if body["kind"] == "ClusterQueue"]
    assert {q["spec"]["cohortName"] for q in queues} == {"cmp-kueue"}
    assert [q["spec"]["fairSharing"]["weight"] for q in queues] == ["1", "1", "2", "1"]
    for queue in queues:
        preemption = queue["spec"]["preemption"]
        assert preemption["reclaimWithinCohort"] == "Any"
        # Kueue refuses borrowWithinCohort together with fair sharing.
        assert "borrowWithinCohort" not in preemption
    team_c = queues[2]["spec"]
    gpu = next(
        r for r in team_c["resourceGroups"][0]["flavors"][0]["resources"] if r["name"] == GPU
    )
    assert gpu["nominalQuota"] == "32"
    assert team_c["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "cmp-kueue-team-c"
    }
    local = [(path, body) for path, body in objects if body["kind"] == "LocalQueue"]
    assert local[2][0].endswith("/namespaces/cmp-kueue-team-c/localqueues")
    assert local[2][1]["spec"]["clusterQueue"] == queues[2]["metadata"]["name"]


def test_scheduler_names_are_parsed_in_order_once_each() -> None:
    assert configs.parse_schedulers("hybrid, kueue,hybrid") == [
        SchedulerKind.HYBRID,
        SchedulerKind.KUEUE,
    ]
    with pytest.raises(configs.UnknownSchedulerError, match="'volcano'"):
        configs.parse_schedulers("kueue,volcano")


# -- the figures from recorded pods -------------------------------------------------------


def outcome(
    job_: StreamJob, created_s: float, *pods: tuple[float | None, float | None, bool]
) -> JobOutcome:
    return JobOutcome(job_, created_s, tuple(PodSeen(job_.name, b, e, ok) for b, e, ok in pods))


def test_jct_and_wait_run_from_creation_to_the_last_needed_pod() -> None:
    single = outcome(stream_job("a", runtime_s=10), 0.0, (2.0, 12.0, True))
    gang = outcome(
        stream_job("b", pods=2, team="team-b", runtime_s=10),
        1.0,
        (3.0, 13.0, True),
        (5.0, 15.0, True),
    )
    metrics = round_metrics([single, gang], TEAMS[:2], 8, end_s=20.0, window_s=5.0)
    assert (metrics.finished, metrics.jobs_left) == (2, 0)
    assert metrics.jct_mean_s == pytest.approx((12.0 + 14.0) / 2)
    assert metrics.wait_mean_s == pytest.approx((2.0 + 4.0) / 2)
    assert metrics.worst_team_slowdown == pytest.approx(1.4)
    assert metrics.pods_bound == 3
    assert metrics.pods_per_s == pytest.approx(2 / 3)


def test_a_preempted_pod_does_not_finish_its_job_but_its_successor_does() -> None:
    preempted = outcome(stream_job("a"), 0.0, (1.0, 4.0, False), (6.0, 16.0, True))
    assert preempted.finished_s == 16.0
    metrics = round_metrics([preempted], TEAMS[:1], 8, end_s=20.0, window_s=5.0)
    assert metrics.wait_mean_s == 6.0


def test_a_gang_left_short_is_a_job_left_holding_gpus_until_the_end() -> None:
    short = outcome(stream_job("g", pods=3), 0.0, (1.0, None, False), (2.0, None, False))
    metrics = round_metrics([short], TEAMS[:1], 8, end_s=11.0, window_s=5.0)
    assert (metrics.finished, metrics.jobs_left) == (0, 1)
    assert math.isnan(metrics.jct_mean_s)
    # 2 GPUs per pod: one pod from 1 s, the other from 2 s, both until 11 s.
    assert metrics.partial_gang_gpu_s == pytest.approx(2 * (10.0 + 9.0))


def test_partial_gang_time_ends_when_the_last_pod_is_bound() -> None:
    gang = outcome(stream_job("g", pods=2), 0.0, (1.0, 11.0, True), (4.0, 14.0, True))
    # One pod of 2 GPUs waited 3 s for its sibling; single pods never count.
    assert partial_gang_gpu_s(gang, end_s=20.0) == pytest.approx(6.0)
    single = outcome(stream_job("s"), 0.0, (1.0, 11.0, True))
    assert partial_gang_gpu_s(single, end_s=20.0) == 0.0


def test_jain_is_one_for_weighted_shares_and_lower_when_a_team_starves() -> None:
    teams = [Team("team-a", 1), Team("team-c", 2)]
    fair = [
        outcome(stream_job("a1", team="team-a"), 0.0, (0.0, 10.0, True)),
        outcome(stream_job("c1", team="team-c"), 0.0, (0.0, 10.0, True)),
        outcome(stream_job("c2", team="team-c"), 0.0, (0.0, 10.0, True)),
    ]
    # 6 GPUs: 2 for team-a, 4 for team-c, both asking more than they hold.
    extra = [outcome(stream_job(f"w{i}", team=t), 0.0) for i, t in enumerate(["team-a", "team-c"])]
    assert round_metrics(fair + extra, teams, 6, 10.0, 5.0).jain == pytest.approx(1.0)
    starved = [
        outcome(stream_job("c1", team="team-c"), 0.0, (0.0, 10.0, True)),
        outcome(stream_job("c2", team="team-c"), 0.0, (0.0, 10.0, True)),
        outcome(stream_job("c3", team="team-c"), 0.0, (0.0, 10.0, True)),
        outcome(stream_job("a1", team="team-a"), 0.0),
    ]
    assert round_metrics(starved, teams, 6, 10.0, 5.0).jain < 0.8


def test_pods_are_matched_to_jobs_and_moved_to_the_round_origin() -> None:
    jobs = [stream_job("job-1"), stream_job("job-2")]
    seen = {"ns/job-1-x": PodSeen("job-1", 103.0, 113.0, True)}
    outcomes = job_outcomes(jobs, {"job-1": 101.0}, seen, origin=100.0)
    assert outcomes[0].created_s == 1.0
    assert outcomes[0].pods == (PodSeen("job-1", 3.0, 13.0, True),)
    assert (outcomes[1].created_s, outcomes[1].pods) == (None, ())


def test_api_calls_are_counted_per_bound_pod() -> None:
    before: Counter[CallKey] = Counter({CallKey("POST", "pods", "binding", ""): 5})
    after = before + Counter(
        {
            CallKey("POST", "pods", "binding", ""): 4,
            CallKey("POST", "events", "", "events.k8s.io"): 2,
            CallKey("GET", "pods", "", ""): 50,
        }
    )
    calls = calls_per_pod(before, after, pods=4)
    assert calls["bindings"] == 1.0
    assert calls["events"] == 0.5
    assert calls["all_writes"] == 1.5


# -- schedulers that cannot run -----------------------------------------------------------


def test_a_missing_peer_says_how_to_start_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devcluster_cluster, "running_state", lambda _settings: ClusterState())
    with pytest.raises(schedulers.SchedulerUnavailableError, match="up --peers"):
        schedulers.peer_record(ClusterSettings(), SchedulerKind.KUEUE)


def test_a_dead_peer_is_named_with_its_log(monkeypatch: pytest.MonkeyPatch) -> None:
    dead = ProcessRecord("kueue", 2**22 + 1, 1, "/state/logs/kueue.log")
    running = ClusterState(processes=[dead])
    monkeypatch.setattr(devcluster_cluster, "running_state", lambda _settings: running)
    with pytest.raises(
        schedulers.SchedulerUnavailableError,
        match=r"has exited; see its log /state/logs/kueue\.log",
    ):
        schedulers.peer_record(ClusterSettings(), SchedulerKind.KUEUE)


def test_a_scheduler_that_cannot_run_is_skipped_and_the_next_round_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started: list[SchedulerKind] = []

    def start_round(kind: SchedulerKind, *_args: object) -> object:
        started.append(kind)
        raise schedulers.SchedulerUnavailableError(f"{kind.value} did not start (log: x.log)")

    monkeypatch.setattr(rounds, "start_round", start_round)
    monkeypatch.setattr(rounds, "cleanup", lambda *_args: None)
    setup = rounds.RoundSetup([], TEAMS, SEED_PAPER_CAPACITY, 60.0, 1.0, LIMITS, "hybrid", tmp_path)
    said: list[str] = []
    kinds = [SchedulerKind.KUEUE, SchedulerKind.HYBRID]
    results = rounds.run_rounds(cast(ApiServer, None), ClusterSettings(), kinds, setup, said.append)
    assert started == kinds
    assert [r.skipped for r in results] == [
        "kueue did not start (log: x.log)",
        "hybrid did not start (log: x.log)",
    ]
    assert "   skipped: kueue did not start (log: x.log)" in said
    assert all(r.metrics is None for r in results)


# -- the report ---------------------------------------------------------------------------


def test_the_table_puts_the_prediction_under_its_row_and_a_skipped_scheduler_on_one_line() -> None:
    finished = outcome(stream_job("a", runtime_s=10), 0.0, (2.0, 12.0, True))
    measured = rounds.RoundResult(
        SchedulerKind.KUBE_SCHEDULER,
        metrics=round_metrics([finished], TEAMS[:1], 8, 20.0, 5.0),
        calls_per_pod={"bindings": 1.0, "all_writes": 15.25},
    )
    skipped = rounds.RoundResult(SchedulerKind.KUEUE, skipped="kueue has exited; see its log k")
    predicted = Prediction("kube-default", 10.5, 11.0, 0.0, 0.0, 1.0, 1.05, 0.0, 0)
    lines = report.table([measured, skipped], {"kube-scheduler": predicted}).splitlines()
    assert lines[1].split()[:4] == ["kube-scheduler", "1/1", "12.0", "12.0"]
    assert "15.25" in lines[1].split()
    assert lines[2].split()[:5] == ["sim:", "kube-default", "1/1", "10.5", "11.0"]
    assert lines[3] == f"{'kueue':<20}  skipped: kueue has exited; see its log k"
    document = report.as_json({"jobs": 1}, [measured, skipped], {"kube-scheduler": predicted})
    assert document["rounds"][0]["prediction"]["jct_mean_s"] == 10.5
    assert document["rounds"][1]["metrics"] is None
    # NaN (no pods bound per second from one binding) is written as null.
    assert document["rounds"][0]["metrics"]["pods_per_s"] is None
