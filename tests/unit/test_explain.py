"""explain: the decision record read back, checked against the pod's binding, never a crash."""

import json
from typing import Any

import pytest

from hybrid_operator.cli import main
from hybrid_operator.commands import explain_cmd, kubeconfig
from hybrid_operator.decision_record import CLOCK_SLACK_S, DECISION_ANNOTATION
from hybrid_operator.k8s.api import KubeApi
from hybrid_operator.reservations import ReservationNotice
from hybrid_policy.prediction.model import PredictionSource

CREATED = "2025-03-01T10:00:00Z"
BOUND = "2025-03-01T10:00:05Z"
BOUND_AT = 1740823205.0  # BOUND in seconds since the epoch


def record(**changes: Any) -> dict[str, Any]:
    base = {
        "policy": "binpack",
        "path": "sequential",
        "node": "n1",
        "score": 87.5,
        "runnersUp": [{"node": "n2", "score": 40.0}],
        "namespaceShare": 0.25,
        "metrics": "live",
        "instance": "hybrid-scheduler-abc",
        "scheduler": "hybrid-scheduler",
        "at": BOUND_AT - 0.4,
    }
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def pod(annotation: object, node: str | None = "n1", **spec: Any) -> dict[str, Any]:
    raw = annotation if isinstance(annotation, str) else json.dumps(annotation)
    return {
        "metadata": {
            "name": "p",
            "namespace": "team-a",
            "creationTimestamp": CREATED,
            "annotations": {DECISION_ANNOTATION: raw},
        },
        "spec": {"schedulerName": "hybrid-scheduler", "nodeName": node, **spec},
        "status": {
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": BOUND}]
            if node
            else []
        },
    }


def test_a_record_written_with_the_binding_is_shown_as_matching() -> None:
    result = explain_cmd.explain_pod("team-a/p", pod(record()))
    assert result.code == 0 and result.err == ""
    assert "node:            n1" in result.out
    assert "policy (path):   binpack (sequential)" in result.out
    assert "  n2" in result.out
    assert "decided by:      hybrid-scheduler (replica hybrid-scheduler-abc)" in result.out
    assert "binding:         the record matches the pod's binding" in result.out


@pytest.mark.parametrize(
    ("annotation", "problem"),
    [
        ("{not json", "cannot be read: not JSON"),
        ("[1, 2]", "cannot be read: not a JSON object (got list)"),
        ('"text"', "cannot be read: not a JSON object (got str)"),
        (record(node=3), "node: must be a non-empty string (got 3)"),
        (record(at="yesterday"), "at: must be a number (got 'yesterday')"),
        (record(at=None), "at: must be a number (got None)"),
        (record(score=True), "score: must be a number (got True)"),
        (record(runnersUp={"n2": 1}), "runnersUp: must be a list"),
        (record(runnersUp=[{"node": "n2", "score": "x"}]), "runnersUp[0].score: must be a number"),
        (record(runnersUp=["n2"]), "runnersUp[0]: must be {node, score} (got 'n2')"),
    ],
)
def test_a_malformed_record_is_named_not_a_crash(annotation: object, problem: str) -> None:
    result = explain_cmd.explain_pod("team-a/p", pod(annotation))
    assert result.code == 1 and result.out == ""
    assert result.err.startswith("team-a/p: the decision record cannot be read: ")
    assert problem in result.err


def test_every_problem_of_a_record_is_listed() -> None:
    result = explain_cmd.explain_pod("team-a/p", pod(record(node="", policy=7)))
    assert "policy: must be a non-empty string (got 7)" in result.err
    assert "node: must be a non-empty string (got '')" in result.err


MISMATCHES = [
    (pod(record(node="n9")), "the record names node n9, the pod is bound to n1"),
    (pod(record(), node=None), "the pod is not bound, yet the record places it on n1"),
    (
        pod(record(), schedulerName="default-scheduler"),
        "the record was written by scheduler hybrid-scheduler, "
        "the pod's spec.schedulerName is default-scheduler",
    ),
    (pod(record(scheduler=None)), "the record does not name the scheduler that wrote it"),
    (
        pod(record(at=BOUND_AT - 3600)),
        "the record's time is before the pod was created",
    ),
    (
        pod(record(at=BOUND_AT + 2 * CLOCK_SLACK_S)),
        "the record's time is +120 s from the pod's PodScheduled time",
    ),
]


@pytest.mark.parametrize(("body", "problem"), MISMATCHES)
def test_a_record_that_disagrees_with_the_binding_is_unverified(
    body: dict[str, Any], problem: str
) -> None:
    result = explain_cmd.explain_pod("team-a/p", body)
    assert result.code == 1
    assert "binding:         UNVERIFIED: the record does not match the pod's binding" in result.out
    assert f"  - {problem}" in result.out.splitlines()


def test_a_record_written_by_updating_the_pod_is_unverified() -> None:
    body = pod(record())
    owned: dict[str, Any] = {"f:metadata": {"f:annotations": {f"f:{DECISION_ANNOTATION}": {}}}}
    body["metadata"]["managedFields"] = [
        {"manager": "kube-scheduler", "operation": "Update", "subresource": "binding"},
        {"manager": "kubectl-annotate", "operation": "Update", "fieldsV1": owned},
    ]
    result = explain_cmd.explain_pod("team-a/p", body)
    assert result.code == 1
    assert "  - the record was written by an update of the pod: kubectl-annotate (Update)" in (
        result.out.splitlines()
    )
    owned_by_binding = {**body["metadata"]["managedFields"][1], "subresource": "binding"}
    body["metadata"]["managedFields"] = [owned_by_binding]
    assert explain_cmd.explain_pod("team-a/p", body).code == 0


def test_a_bound_pod_without_the_condition_cannot_be_dated() -> None:
    body = pod(record())
    body["status"]["conditions"] = []
    result = explain_cmd.explain_pod("team-a/p", body)
    assert result.code == 1
    assert "  - the pod has no PodScheduled=True condition to date its binding" in (
        result.out.splitlines()
    )


def test_a_pod_without_a_record() -> None:
    body = pod(record())
    del body["metadata"]["annotations"]
    result = explain_cmd.explain_pod("team-a/p", body)
    assert (result.code, result.out) == (1, "")
    assert result.err == "team-a/p has no decision record (hybrid-scheduler has not bound it)"


def test_explain_reads_the_whole_pod(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked: list[tuple[str, str]] = []

    def read_pod(self: KubeApi, namespace: str, name: str) -> dict[str, Any]:
        asked.append((namespace, name))
        return pod(record(node="n9"))

    monkeypatch.setattr(kubeconfig, "api_client", lambda _path: None)
    monkeypatch.setattr(KubeApi, "__init__", lambda self, *_a, **_k: None)
    monkeypatch.setattr(KubeApi, "read_pod", read_pod)
    assert main(["explain", "team-a/p"]) == 1
    assert asked == [("team-a", "p")]
    out = capsys.readouterr().out
    assert "node:            n9" in out and "UNVERIFIED" in out


@pytest.mark.parametrize("arg", ["nopod", "team-a/", "/p", "a/b/c"])
def test_explain_wants_namespace_slash_pod(arg: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", arg]) == 2
    assert capsys.readouterr().err == (
        f"hybrid-scheduler explain: give NAMESPACE/POD (got {arg!r})\n"
    )


def test_explain_without_a_kubeconfig_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.yaml"
    monkeypatch.setenv("KUBECONFIG", str(missing))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert main(["explain", "team-a/p"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hybrid-scheduler explain: no usable kubeconfig ({missing}: ")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert main(["explain", "team-a/p", "--kubeconfig", str(missing)]) == 2
    assert capsys.readouterr().err.startswith(
        f"hybrid-scheduler explain: --kubeconfig {missing}: cannot load it: "
    )


def test_explain_with_no_api_server_to_reach_is_one_line(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {}}]\n"
    )
    assert main(["explain", "team-a/p", "--kubeconfig", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hybrid-scheduler explain: cannot reach the API server at ")
    assert err.count("\n") == 1


def _pending(nominated: str | None, message: str) -> dict[str, Any]:
    condition = {"type": "PodScheduled", "status": "False", "message": message}
    status: dict[str, Any] = {"phase": "Pending", "conditions": [condition]}
    if nominated:
        status["nominatedNodeName"] = nominated
    return {"metadata": {"name": "p", "namespace": "team-a"}, "spec": {}, "status": status}


def _notice(node: str = "n3") -> str:
    return ReservationNotice(
        node=node, now_s=BOUND_AT, predicted_start_s=BOUND_AT + 360,
        source=PredictionSource.HISTORY, namespace="team-a", rank=2, holds=0.18, entitled=0.2,
    ).message()  # fmt: skip


def test_a_pending_pod_shows_its_reserved_node_queue_position_and_predicted_start() -> None:
    result = explain_cmd.explain_pod("team-a/p", _pending("n3", _notice()))
    assert result.code == 0 and result.err == ""
    assert "pending:         node n3 is reserved for it" in result.out
    assert "queue position:  2nd in team-a's queue" in result.out
    assert "predicted start: 10:06:05 UTC (from history)" in result.out


def test_a_nominated_node_the_notice_does_not_name_is_pointed_out() -> None:
    result = explain_cmd.explain_pod("team-a/p", _pending("n1", _notice("n3")))
    assert result.code == 0
    assert "node n1 is reserved" in result.out and "last notice named n3" in result.out


@pytest.mark.parametrize("nominated", [None, ""])
def test_a_pending_pod_without_a_reservation_has_no_decision_to_show(
    nominated: str | None,
) -> None:
    result = explain_cmd.explain_pod("team-a/p", _pending(nominated, _notice()))
    assert result.code == 1 and "has no decision record" in result.err


def test_a_pending_pod_of_a_waiting_gang_shows_the_gang_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    notice = "gang team-a/llm: 2 of 4 pods would fit; none is placed until all fit"
    waiting = _pending(None, notice)
    waiting["metadata"]["labels"] = {"scheduling.x-k8s.io/pod-group": "llm"}
    late = {"metadata": {"name": "late"}, "spec": {"nodeName": "n1"}}
    selectors: list[str] = []

    def list_pods(self: KubeApi, namespace: str, selector: str) -> list[dict[str, Any]]:
        selectors.append(selector)
        return [waiting, waiting, late]

    monkeypatch.setattr(kubeconfig, "api_client", lambda _path: None)
    monkeypatch.setattr(KubeApi, "__init__", lambda self, *_a, **_k: None)
    monkeypatch.setattr(KubeApi, "read_pod", lambda self, namespace, name: waiting)
    monkeypatch.setattr(KubeApi, "list_pods", list_pods)
    assert main(["explain", "team-a/p"]) == 0
    assert selectors == ["scheduling.x-k8s.io/pod-group=llm"]
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "pod:             team-a/p",
        "gang:            team-a/llm: 1 bound, 3 exist, 4 needed",
        "waiting:         2 of 4 pods would fit; none is placed until all fit",
    ]


@pytest.mark.parametrize("gang", ["", "gang team-b/llama: "])
def test_a_preempting_pod_shows_its_victims_and_why(gang: str) -> None:
    message = f"{gang}preempting team-a/a1 on n1 (reclaim: team-b holds 0.00 of an entitled 0.50)"
    result = explain_cmd.explain_pod("team-b/p", _pending("n1", message))
    assert result.code == 0
    assert "pending:         node n1 is held for it while its victims go" in result.out
    assert f"preemption:      {message}" in result.out


def test_a_preempted_pod_shows_by_whom() -> None:
    victim = pod(record())
    message = "preempted by team-b/b1 on n1: team-a holds 1.00 of an entitled 0.50"
    condition = {"type": "DisruptionTarget", "reason": "PreemptionByScheduler", "message": message}
    victim["status"]["conditions"].append(condition)
    result = explain_cmd.explain_pod("team-a/p", victim)
    assert result.code == 0
    assert result.out.endswith(f"preempted:       {message}")
