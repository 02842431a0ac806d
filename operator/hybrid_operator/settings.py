"""Operator settings: what to schedule, with which policy, how often.

Each field documents its unit and default. The same names are used on the command line
(``--batch-interval`` for ``batch_interval_s``, ...); :meth:`OperatorSettings.validate`
refuses impossible values with a message naming the setting and the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import pairwise

from hybrid_policy.framework.paths import ModelFallback
from hybrid_policy.policies import policy_names, reserving_policy_names
from hybrid_policy.preemption.options import parse_settings
from hybrid_policy.preemption.phase import PreemptionSettings
from hybrid_policy.reservation import ReservationSettings

DEFAULT_SCHEDULER_NAME = "hybrid-scheduler"
#: ``model_fallback`` values: refuse to start, or schedule with the binpack scorer.
MODEL_FALLBACKS = tuple(f.value for f in ModelFallback)


class SettingsError(ValueError):
    """A setting that cannot be used."""


@dataclass
class OperatorSettings:
    """How the operator runs."""

    #: Pods whose ``spec.schedulerName`` equals this are ours. Default ``hybrid-scheduler``.
    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    #: Namespaces to schedule in; empty means all namespaces.
    namespaces: list[str] = field(default_factory=list)
    #: Scheduling policy (a name from ``hybrid_policy.policies``). Default ``kube-default``.
    policy: str = "kube-default"
    #: Seconds between scheduling passes; pods arriving meanwhile form one batch. Default 1.
    batch_interval_s: float = 1.0
    #: Most pods one pass takes from the queue. Default 500.
    batch_size: int = 500
    #: Fair-share weight of namespaces without a valid weight annotation. Default 1.
    default_weight: float = 1.0
    #: First retry delay of a pod that fit nowhere, doubling up to ``max_backoff_s``. Default 1.
    initial_backoff_s: float = 1.0
    #: Longest retry delay, seconds. Default 10 (kube-scheduler's).
    max_backoff_s: float = 10.0
    #: A pod that fit nowhere is tried again after this many seconds even if no cluster
    #: change woke it. Default 300 (kube-scheduler's ``podMaxInUnschedulablePodsDuration``).
    max_parked_s: float = 300.0
    #: Prometheus base URL for live utilisation; None schedules on requests alone.
    prometheus_url: str | None = None
    #: Seconds between utilisation refreshes. Default 15.
    metrics_refresh_s: float = 15.0
    #: Samples older than this many seconds are ignored. Default 120.
    metrics_staleness_s: float = 120.0
    #: PromQL giving each running pod's fraction of work done (0..1), labelled
    #: ``namespace`` and ``pod``, read once per pass by reserving policies when
    #: ``prometheus_url`` is set; samples older than ``metrics_staleness_s`` are ignored.
    #: Empty turns it off. Default ``hybrid_scheduler_training_progress``.
    progress_query: str = "hybrid_scheduler_training_progress"
    #: Seconds one Prometheus query may take. Default 5.
    metrics_timeout_s: float = 5.0
    #: Port of /metrics, /healthz and /readyz on ``http_host``; 0 turns them off. Default 8080.
    http_port: int = 8080
    #: Address the HTTP endpoints listen on. Default 0.0.0.0 (all interfaces, as in a pod).
    http_host: str = "0.0.0.0"
    #: Run passes only while holding the Lease, so that replicas can stand by. Default on.
    leader_election: bool = True
    #: Namespace of the Lease. Default ``default``.
    lease_namespace: str = "default"
    #: Name of the Lease; replicas sharing it elect one leader. Default ``hybrid-scheduler``.
    lease_name: str = "hybrid-scheduler"
    #: Seconds a standby waits, after it last saw the Lease change, before taking over.
    #: Default 15 (kube-scheduler's ``leaseDuration``).
    lease_duration_s: float = 15.0
    #: Seconds the leader keeps leading without a successful renewal; then it stops
    #: binding at once. Less than ``lease_duration_s``. Default 10 (``renewDeadline``).
    renew_deadline_s: float = 10.0
    #: Seconds between election rounds (the leader's renewals, the standbys' checks).
    #: Less than ``renew_deadline_s``; each Lease call times out after half of that.
    #: Default 2 (``retryPeriod``).
    retry_period_s: float = 2.0
    #: This replica's name in the Lease and in Events; empty means ``<hostname>-<pid>``.
    identity: str = ""
    #: Serve the opt-in admission webhook and manage its configuration. Default off.
    webhook: bool = False
    #: Host name or address the API server uses to reach the webhook (required with a
    #: self-issued certificate, i.e. without ``webhook_cert_dir``).
    webhook_host: str = ""
    #: Directory holding ``tls.crt`` and ``tls.key`` (a mounted Secret) to serve the webhook
    #: with. Then the operator neither issues a certificate nor touches the webhook
    #: configuration: whoever made the certificate (the Helm chart) owns both, and every
    #: replica serves the same one. Empty: self-issue at start and manage the
    #: configuration. Default empty.
    webhook_cert_dir: str = ""
    #: Address the webhook listens on. Default 0.0.0.0.
    webhook_addr: str = "0.0.0.0"
    #: Port the webhook listens on. Default 9443.
    webhook_port: int = 9443
    #: Shadow mode: for pods this scheduler (e.g. ``default-scheduler``) binds, record what
    #: we would have chosen; empty turns it off. Our own pods are scheduled as usual.
    shadow_of: str = ""
    #: PromQL per resource (``cpu``, ``memory``, ``gpu``) giving per-node utilisation in
    #: 0..1; missing keys use the defaults of :mod:`hybrid_operator.promql`.
    promql: dict[str, str] = field(default_factory=dict)
    #: Average API calls per second (bindings, patches, reads); Events get a second bucket
    #: with the same limits, like kube-scheduler's event client. 0 turns the limit off.
    #: Default 50 (kube-scheduler's ``clientConnection.qps``).
    api_qps: float = 50.0
    #: Calls that may go at once above ``api_qps``. Default 100 (kube-scheduler's ``burst``).
    api_burst: int = 100
    #: Seconds any one API call may take (connect and read) before it counts as failed and
    #: its pod is retried. Default 10.
    api_timeout_s: float = 10.0
    #: Seconds between full listings of pods, nodes and namespaces that reconcile the cache
    #: with the API server (objects deleted while a watch was down). A re-list by the
    #: watches also triggers one. Default 120.
    resync_interval_s: float = 120.0
    #: Kubeconfig file; None uses ``$KUBECONFIG``, ``~/.kube/config`` or in-cluster config.
    kubeconfig: str | None = None
    #: Seed of the random tie-breaking between equally good nodes. Default 0.
    seed: int = 0
    #: DQN checkpoint of the ``dqn`` and ``hybrid`` policies; empty means the model shipped
    #: in the package. Default empty.
    model_path: str = ""
    #: What to do when that checkpoint cannot be used: ``none`` refuses to start, naming
    #: the file and the problem; ``binpack`` starts with the binpack scorer in its place
    #: and says so (log, ``hybrid_scheduler_fallbacks_total{reason="model-unavailable"}``,
    #: the decision record's path). Default ``none``.
    model_fallback: str = "none"
    #: Preemption: ``off``; ``on`` (the default rules); or the rules changed as
    #: ``KEY=VALUE`` pairs joined by commas, as ``simulate --preemption`` takes them
    #: (``reasons=reclaim+priority,max_plans=2,min_runtime_s=300,max_preemptions=3,
    #: trigger_delay_s=60``). Only pods that opted in are ever victims. Default ``off``.
    preemption: str = "off"
    #: Every pod of ours may be a victim unless it opts out by annotation. Default off.
    preemption_all_pods: bool = False
    #: Changes to a reserving policy's reservation settings (docs/reservation.md), as
    #: ``KEY=VALUE`` pairs joined by commas, as ``simulate --reservation`` takes them:
    #: ``mode`` (none, reserve, easy, conservative), ``max_reservations``, ``max_wait_s``
    #: (seconds before a pod goes ahead of the fair order; ``none``: never),
    #: ``switch_margin_s``, ``backfill_factor``, ``order`` (drf, capped), ``level_slack``.
    #: Only for the reserving policies. Default empty: the policy's own settings.
    reservation: str = ""

    def preemption_settings(self) -> PreemptionSettings | None:
        """The preemption rules, or None when preemption is off."""
        text = self.preemption.strip()
        return None if text == "off" else parse_settings(text)

    def validate(self) -> OperatorSettings:
        """Return self, or raise :class:`SettingsError` naming the bad setting and value."""
        if not self.scheduler_name.strip():
            raise SettingsError("scheduler_name: must not be empty")
        if "," in self.policy:
            raise SettingsError(f"policy: the operator runs one policy (got {self.policy!r})")
        if self.policy not in policy_names():
            known = ", ".join(policy_names())
            raise SettingsError(f"policy: unknown policy {self.policy!r} (known: {known})")
        for name in ("lease_namespace", "lease_name"):
            if not str(getattr(self, name)).strip():
                raise SettingsError(f"{name}: must not be empty")
        if any(not ns.strip() for ns in self.namespaces):
            raise SettingsError(f"namespaces: names must not be empty (got {self.namespaces!r})")
        checks: list[tuple[str, float, float]] = [
            ("batch_interval_s", self.batch_interval_s, 0.01),
            ("batch_size", float(self.batch_size), 1),
            ("default_weight", self.default_weight, 1e-9),
            ("initial_backoff_s", self.initial_backoff_s, 0.0),
            ("max_backoff_s", self.max_backoff_s, self.initial_backoff_s),
            ("max_parked_s", self.max_parked_s, 1.0),
            ("metrics_refresh_s", self.metrics_refresh_s, 0.1),
            ("metrics_staleness_s", self.metrics_staleness_s, 0.0),
            ("metrics_timeout_s", self.metrics_timeout_s, 0.1),
            ("api_qps", self.api_qps, 0.0),
            ("api_burst", float(self.api_burst), 1),
            ("api_timeout_s", self.api_timeout_s, 0.1),
            ("resync_interval_s", self.resync_interval_s, 1.0),
            ("seed", float(self.seed), 0),
        ]
        if self.webhook and not self.webhook_host and not self.webhook_cert_dir:
            raise SettingsError(
                "webhook_host: required with a self-issued webhook certificate "
                "(how the API server reaches it); or give webhook_cert_dir"
            )
        if self.model_fallback not in MODEL_FALLBACKS:
            raise SettingsError(
                f"model_fallback: must be one of {', '.join(MODEL_FALLBACKS)} "
                f"(got {self.model_fallback!r})"
            )
        try:
            self.preemption_settings()
        except ValueError as exc:
            raise SettingsError(
                f"preemption: {exc} (got {self.preemption!r}; off, on or KEY=VALUE,...)"
            ) from None
        self._validate_reservation()
        if not 0 < self.webhook_port <= 65535:
            raise SettingsError(f"webhook_port: must be a port number (got {self.webhook_port})")
        if not 0 <= self.http_port <= 65535:
            raise SettingsError(
                f"http_port: must be 0 (off) or a port number (got {self.http_port})"
            )
        for name, value, minimum in checks:
            if not math.isfinite(value) or value < minimum:
                raise SettingsError(f"{name}: must be a number >= {minimum:g} (got {value!r})")
        self._validate_lease_timings()
        return self

    def _validate_reservation(self) -> None:
        """Reservation changes only for a reserving policy, each key and value usable."""
        if not self.reservation.strip():
            return
        if self.policy not in reserving_policy_names():
            reserving = ", ".join(reserving_policy_names())
            raise SettingsError(
                f"reservation: policy {self.policy!r} does not reserve (got "
                f"{self.reservation!r}; reserving policies: {reserving})"
            )
        try:  # the defaults changed by it, so that a bad key or value is named at start
            ReservationSettings().overridden(self.reservation)
        except ValueError as exc:
            raise SettingsError(
                f"reservation: {exc} (got {self.reservation!r}; KEY=VALUE,...)"
            ) from None

    def _validate_lease_timings(self) -> None:
        """Each positive, and retry period < renew deadline < lease duration."""
        timings = [
            ("lease_duration_s", self.lease_duration_s),
            ("renew_deadline_s", self.renew_deadline_s),
            ("retry_period_s", self.retry_period_s),
        ]
        for name, value in timings:
            if not math.isfinite(value) or value <= 0:
                raise SettingsError(f"{name}: must be a number > 0 (got {value!r})")
        for (longer, bound), (shorter, value) in pairwise(timings):
            if value >= bound:
                raise SettingsError(
                    f"{shorter}: must be less than {longer} ({bound:g}) (got {value!r})"
                )
