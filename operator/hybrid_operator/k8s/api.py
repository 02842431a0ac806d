"""The calls the operator makes to the API server, through the official client.

Binding goes through ``pods/{name}/binding`` with the pod's UID, so a pod recreated under
the same name is never bound by mistake. The client raises a ``ValueError`` after a
*successful* binding because it cannot parse the response (kubernetes-client/python#547),
so the call is made with ``_preload_content=False`` and the HTTP status is checked
instead. A binding may carry annotations: the API server copies a Binding's
``metadata.annotations`` onto the pod in the same write that sets ``spec.nodeName`` and
the ``PodScheduled=True`` condition (``setPodNodeAndMetadata`` in kube-apiserver's pod
storage), so the decision record needs no call of its own.

Every call carries a request timeout (``api_timeout_s``), so a call to an API server that
has gone silent fails instead of holding its pod forever. A binding never raises: any
failure, whatever the client library raises (``urllib3``'s ``MaxRetryError`` when the API
server is down, a timeout, ...), is a :class:`BindResult` with outcome ``ERROR``. A binding
can be called off after it waited for the rate limit and before it is sent
(``still_wanted``): the node may have gone, or leadership been lost, meanwhile.

The preemption counts live in one ConfigMap (:mod:`hybrid_operator.preemption_ledger`): it
is read whole and written whole, each update carrying the ``resourceVersion`` read, so a
write that another replica overtook fails with :class:`WriteConflictError` instead of undoing
it.

Calls are rate-limited like kube-scheduler's: ``api_qps``/``api_burst`` for bindings,
patches and reads, and a second bucket with the same limits for Events (kube-scheduler
posts its Events through a client of their own). Every call is blocking; the scheduler
runs them in worker threads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from hybrid_operator.k8s.convert import Body
from hybrid_operator.k8s.gangs import POD_GROUP_GROUP, POD_GROUP_PLURAL, POD_GROUP_VERSION
from hybrid_operator.k8s.preempt import DeleteOutcome, DeleteResult, disruption_condition
from hybrid_operator.k8s.ratelimit import TokenBucket
from hybrid_policy.domain import PendingPod

COMPONENT = "hybrid-scheduler"
#: kube-scheduler's ``clientConnection`` defaults (KubeSchedulerConfiguration v1).
DEFAULT_QPS = 50.0
DEFAULT_BURST = 100
#: Connections kept open to the API server (the client's default is 5 per CPU).
API_CONNECTIONS = 32
#: Seconds one call may take, connect and read, unless the settings say otherwise.
DEFAULT_TIMEOUT_S = 10.0


class BindOutcome(StrEnum):
    """What happened to a binding."""

    BOUND = "bound"
    #: Already bound elsewhere, or the UID no longer matches (recreated pod).
    CONFLICT = "conflict"
    #: The pod is gone.
    GONE = "gone"
    #: Anything else (the API server refused or was unreachable); retry later.
    ERROR = "error"
    #: Called off before it was sent (``still_wanted`` said no); schedule the pod again.
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class BindResult:
    """A binding's outcome and, when it failed, the API server's words."""

    outcome: BindOutcome
    detail: str = ""
    #: The API server could not be reached (no answer at all, not a refusal).
    unreachable: bool = False


class WriteConflictError(Exception):
    """A write found the object changed (or created, or gone) since it was read (409, or
    404 for an update)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class StoredMap:
    """A ConfigMap's data as read, and the ``resourceVersion`` it was read at."""

    data: dict[str, object]
    version: str


class ClusterApi(Protocol):
    """What the scheduling loop needs from the API server (:class:`KubeApi`, or a fake)."""

    def bind(
        self,
        pod: PendingPod,
        node: str,
        annotations: Mapping[str, str] | None = None,
        still_wanted: Callable[[], bool] | None = None,
    ) -> BindResult:
        """Bind ``pod`` to ``node``, adding ``annotations`` to the pod in the same write;
        ask ``still_wanted`` right before sending, and send nothing if it says no."""
        ...

    def event(
        self,
        involved: dict[str, str],
        reason: str,
        message: str,
        warning: bool = False,
        name: str | None = None,
    ) -> None:
        """Post an Event; with ``name``, under that name, so that posting it again after
        an answer was lost creates nothing new (an Event of that name already there counts
        as posted)."""
        ...

    def mark_unschedulable(self, pod: PendingPod, message: str) -> None:
        """Set PodScheduled=False."""
        ...

    def annotate(self, pod: PendingPod, key: str, record: dict[str, Any]) -> None:
        """Write a JSON annotation."""
        ...

    def read_namespace_labels(self, name: str) -> dict[str, str]:
        """A namespace's labels as the API server has them now (raises if it cannot)."""
        ...

    def nominate(self, pod: PendingPod, node: str | None, message: str | None = None) -> None:
        """Set ``status.nominatedNodeName`` to ``node`` (None clears it), with
        PodScheduled=False saying ``message`` when given."""
        ...

    def patch_pod_group_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge ``status`` into PodGroup ``namespace/name``'s status subresource."""
        ...

    def mark_disruption_target(self, namespace: str, name: str, message: str) -> None:
        """Set the ``DisruptionTarget`` condition of a pod about to be preempted."""
        ...

    def delete_pod(self, namespace: str, name: str, uid: str) -> DeleteResult:
        """Delete a pod with its own grace period, only if its UID is still ``uid``."""
        ...

    def read_config_map(self, namespace: str, name: str) -> StoredMap | None:
        """ConfigMap ``namespace/name``'s data and resourceVersion; None when there is none."""
        ...

    def write_config_map(
        self, namespace: str, name: str, data: Mapping[str, str], version: str | None
    ) -> str:
        """Create ConfigMap ``namespace/name`` (``version`` None) or replace it if it is still
        at ``version``; returns the new resourceVersion. Raises :class:`WriteConflictError`."""
        ...


def involved_object(body: Body, kind: str) -> dict[str, str]:
    """The reference an Event needs to a watched object."""
    meta = body.get("metadata") or {}
    out = {"kind": kind, "name": str(meta.get("name") or "")}
    if meta.get("namespace"):
        out["namespace"] = str(meta["namespace"])
    if meta.get("uid"):
        out["uid"] = str(meta["uid"])
    return out


def pod_reference(pod: PendingPod) -> dict[str, str]:
    """The reference an Event needs to a pod."""
    return {"kind": "Pod", "namespace": pod.namespace, "name": pod.name, "uid": pod.uid}


def load_client(kubeconfig: str | None) -> client.ApiClient:
    """An API client from ``kubeconfig``, else the default kubeconfig, else in-cluster,
    keeping enough connections open for the scheduler's API threads."""
    configuration = client.Configuration()
    # The client's config helpers carry no type annotations.
    try:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        if kubeconfig:
            raise
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    configuration.connection_pool_maxsize = API_CONNECTIONS
    return client.ApiClient(configuration)


def _timestamp() -> str:
    """Now, in the API server's second-resolution time format."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeApi:
    """Bind pods, post Events, set conditions and annotations, within the rate limits."""

    def __init__(
        self,
        api_client: client.ApiClient,
        instance: str,
        qps: float = DEFAULT_QPS,
        burst: int = DEFAULT_BURST,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.instance = instance
        self.timeout_s = timeout_s
        self.limit = TokenBucket(qps, burst)
        self.event_limit = TokenBucket(qps, burst)

    def bind(
        self,
        pod: PendingPod,
        node: str,
        annotations: Mapping[str, str] | None = None,
        still_wanted: Callable[[], bool] | None = None,
    ) -> BindResult:
        """POST a Binding of ``pod`` (by name and UID) to ``node``, carrying ``annotations``."""
        metadata: dict[str, Any] = {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid}
        if annotations:
            metadata["annotations"] = dict(annotations)
        # A plain dict: building the client's model objects costs more CPU than the call.
        body: Any = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": metadata,
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        self.limit.acquire()
        if still_wanted is not None and not still_wanted():
            return BindResult(BindOutcome.CANCELLED, "called off before it was sent")
        try:
            # With _preload_content=False the client returns the raw HTTP response.
            response: Any = self.core.create_namespaced_pod_binding(
                pod.name,
                pod.namespace,
                body,
                _preload_content=False,
                _request_timeout=self.timeout_s,
            )
        except ApiException as exc:
            outcome = {409: BindOutcome.CONFLICT, 404: BindOutcome.GONE}.get(
                exc.status or 0, BindOutcome.ERROR
            )
            return BindResult(outcome, f"{exc.status} {_reason(exc)}")
        except Exception as exc:  # any failure of the client or the connection: retry later
            return BindResult(BindOutcome.ERROR, f"{type(exc).__name__}: {exc}", True)
        if 200 <= response.status < 300:
            return BindResult(BindOutcome.BOUND)
        return BindResult(BindOutcome.ERROR, f"HTTP {response.status}")

    def event(
        self,
        involved: dict[str, str],
        reason: str,
        message: str,
        warning: bool = False,
        name: str | None = None,
    ) -> None:
        """Post a core/v1 Event about ``involved`` (kind, namespace, name, uid); with
        ``name``, an Event of that name already there (409) counts as posted."""
        namespace = involved.get("namespace") or "default"
        now = _timestamp()
        meta = {"name": name} if name else {"generateName": f"{involved['name']}."}
        # A plain dict, and the answer left unparsed: building and reading the client's
        # model objects costs more CPU than the call itself.
        body: Any = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {**meta, "namespace": namespace},
            "involvedObject": {"apiVersion": "v1", **involved},
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self.event_limit.acquire()
        try:
            response: Any = self.core.create_namespaced_event(
                namespace, body, _preload_content=False, _request_timeout=self.timeout_s
            )
        except ApiException as exc:
            if name and exc.status == 409:
                return  # posted already: an earlier try landed without its answer
            raise
        if not 200 <= response.status < 300:
            raise ApiException(status=response.status, reason="the Event was not created")

    def mark_unschedulable(self, pod: PendingPod, message: str) -> None:
        """Set the PodScheduled condition to False/Unschedulable, as kube-scheduler does."""
        self.limit.acquire()
        self.core.patch_namespaced_pod_status(
            pod.name,
            pod.namespace,
            {"status": {"conditions": [_unschedulable(message)]}},
            _request_timeout=self.timeout_s,
        )

    def nominate(self, pod: PendingPod, node: str | None, message: str | None = None) -> None:
        """Set (or, with None, clear) ``status.nominatedNodeName`` as kube-scheduler does
        for a pod that waits for a node, and PodScheduled=False with ``message`` in the
        same write."""
        status: dict[str, Any] = {"nominatedNodeName": node}
        if message is not None:
            status["conditions"] = [_unschedulable(message)]
        self.limit.acquire()
        self.core.patch_namespaced_pod_status(
            pod.name, pod.namespace, {"status": status}, _request_timeout=self.timeout_s
        )

    def patch_pod_group_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """A merge patch of PodGroup ``namespace/name``'s status subresource."""
        self.limit.acquire()
        self.custom.patch_namespaced_custom_object_status(
            POD_GROUP_GROUP, POD_GROUP_VERSION, namespace, POD_GROUP_PLURAL, name,
            {"status": status}, _request_timeout=self.timeout_s,
        )  # fmt: skip

    def mark_disruption_target(self, namespace: str, name: str, message: str) -> None:
        """Set ``DisruptionTarget=True`` (reason ``PreemptionByScheduler``), as
        kube-scheduler does before it deletes a victim, so that a Job's
        ``podFailurePolicy`` can tell the preemption from a failure."""
        condition = disruption_condition(message, _timestamp())
        self.limit.acquire()
        self.core.patch_namespaced_pod_status(
            name, namespace, {"status": {"conditions": [condition]}},
            _request_timeout=self.timeout_s,
        )  # fmt: skip

    def delete_pod(self, namespace: str, name: str, uid: str) -> DeleteResult:
        """DELETE pod ``namespace/name`` with its own grace period and a UID
        precondition (a pod recreated under the name is never deleted); never raises."""
        body: Any = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
        self.limit.acquire()
        try:
            self.core.delete_namespaced_pod(
                name, namespace, body=body, _preload_content=False,
                _request_timeout=self.timeout_s,
            )  # fmt: skip
        except ApiException as exc:
            status = exc.status or 0
            return DeleteResult(DeleteOutcome.of_status(status), f"{status} {_reason(exc)}")
        except Exception as exc:  # the connection or the client: try again next pass
            return DeleteResult(DeleteOutcome.ERROR, f"{type(exc).__name__}: {exc}")
        return DeleteResult(DeleteOutcome.DELETED)

    def read_config_map(self, namespace: str, name: str) -> StoredMap | None:
        """GET ConfigMap ``namespace/name``; None on 404."""
        self.limit.acquire()
        try:
            response: Any = self.core.read_namespaced_config_map(
                name, namespace, _preload_content=False, _request_timeout=self.timeout_s
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        body: dict[str, Any] = json.loads(response.data)
        version = str((body.get("metadata") or {}).get("resourceVersion") or "")
        return StoredMap(dict(body.get("data") or {}), version)

    def write_config_map(
        self, namespace: str, name: str, data: Mapping[str, str], version: str | None
    ) -> str:
        """POST ConfigMap ``namespace/name`` when ``version`` is None, else PUT it with
        ``version`` as its resourceVersion (the API server refuses it with 409 if the
        object changed since)."""
        metadata: dict[str, Any] = {"name": name, "namespace": namespace}
        if version is not None:
            metadata["resourceVersion"] = version
        body: Any = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata,
            "data": dict(data),
        }
        self.limit.acquire()
        try:
            if version is None:
                response: Any = self.core.create_namespaced_config_map(
                    namespace, body, _preload_content=False, _request_timeout=self.timeout_s
                )
            else:
                response = self.core.replace_namespaced_config_map(
                    name, namespace, body, _preload_content=False,
                    _request_timeout=self.timeout_s,
                )  # fmt: skip
        except ApiException as exc:
            if exc.status == 409 or (exc.status == 404 and version is not None):
                raise WriteConflictError(exc.status, _reason(exc)) from exc
            raise
        written: dict[str, Any] = json.loads(response.data)
        return str((written.get("metadata") or {}).get("resourceVersion") or "")

    def annotate(self, pod: PendingPod, key: str, record: dict[str, Any]) -> None:
        """Write ``record`` as compact JSON under annotation ``key``."""
        self.limit.acquire()
        self.core.patch_namespaced_pod(
            pod.name,
            pod.namespace,
            {"metadata": {"annotations": {key: record_json(record)}}},
            _request_timeout=self.timeout_s,
        )

    def read_pod(self, namespace: str, name: str) -> dict[str, Any]:
        """Pod ``namespace/name`` as the API server's JSON (metadata, spec, status)."""
        self.limit.acquire()
        response: Any = self.core.read_namespaced_pod(
            name, namespace, _preload_content=False, _request_timeout=self.timeout_s
        )
        pod: dict[str, Any] = json.loads(response.data)
        return pod

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """The pods of ``namespace`` that the label ``selector`` selects (JSON)."""
        self.limit.acquire()
        response: Any = self.core.list_namespaced_pod(
            namespace, label_selector=selector, _preload_content=False,
            _request_timeout=self.timeout_s,
        )  # fmt: skip
        items: list[dict[str, Any]] = json.loads(response.data).get("items") or []
        return items

    def read_namespace_labels(self, name: str) -> dict[str, str]:
        """The labels of namespace ``name`` as the API server has them now."""
        self.limit.acquire()
        response: Any = self.core.read_namespace(
            name, _preload_content=False, _request_timeout=self.timeout_s
        )
        body: dict[str, Any] = json.loads(response.data)
        labels: dict[str, str] = (body.get("metadata") or {}).get("labels") or {}
        return labels


def _unschedulable(message: str) -> dict[str, str]:
    """The PodScheduled=False/Unschedulable condition saying ``message``."""
    return {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
        "lastTransitionTime": _timestamp(),
    }


def record_json(record: Mapping[str, Any]) -> str:
    """A record as the compact JSON an annotation holds."""
    return json.dumps(record, separators=(",", ":"), sort_keys=True)


def said(exc: Exception) -> str:
    """What a failed call said, in one short line (the HTTP status and reason, else the
    exception's kind)."""
    status = getattr(exc, "status", None)
    return f"{status} {getattr(exc, 'reason', '')}".strip() if status else type(exc).__name__


def _reason(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)
