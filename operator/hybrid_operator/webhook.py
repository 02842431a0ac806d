"""Opt-in by annotation or namespace label: a mutating admission webhook (kopf).

A pod created with the annotation ``hybrid-scheduler.io/enabled: "true"``, or in a
namespace labelled ``hybrid-scheduler.io/enabled=true``, that would go to the default
scheduler gets ``spec.schedulerName`` set to ours. Pods that name another scheduler are
left alone. The API server sets an empty ``schedulerName`` to ``default-scheduler`` before
any admission webhook sees the pod, so an explicit ``default-scheduler`` cannot be told
from none: in a labelled namespace a pod keeps the default scheduler by saying so with
the annotation ``hybrid-scheduler.io/enabled: "false"``. The webhook fails open
(``failurePolicy: Ignore``): if the operator is down, pods are created as they are and the
default scheduler places them.

The namespace label is read from the watch; a namespace the watch has not shown yet (one
created a moment before its pods, as ``kubectl apply -f`` of a folder does) is read from
the API server, so its first pods are not left to the default scheduler by a race.

Two ways to run it: with a self-issued certificate (:mod:`hybrid_operator.certificates`,
out of the cluster), kopf manages the ``MutatingWebhookConfiguration``
``hybrid-scheduler.io`` and puts the new CA into it; with ``webhook_cert_dir`` (the Helm
chart's Secret, mounted), the certificate is read from ``tls.crt``/``tls.key`` there and
the configuration, which carries the matching CA, belongs to whoever made both, so the
operator needs no permission on it and every replica serves the same certificate.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf

from hybrid_operator.certificates import issue
from hybrid_operator.k8s.views import label_opts_in
from hybrid_operator.settings import OperatorSettings, SettingsError

log = logging.getLogger("hybrid_scheduler")
ENABLED = "hybrid-scheduler.io/enabled"
DEFAULT_SCHEDULER = "default-scheduler"
WEBHOOK_NAME = "hybrid-scheduler.io"
#: kopf serves the handler on ``/<id>``: the Helm chart's configuration names this path.
HANDLER_ID = "opt-in"
#: File names inside ``webhook_cert_dir`` (those of a ``kubernetes.io/tls`` Secret).
CERT_FILE, KEY_FILE = "tls.crt", "tls.key"


@dataclass
class NamespaceOptIn:
    """Which namespaces opted in by label: what the watch has shown, and for a namespace
    it has not shown yet, the API server's answer (``read_labels``; a namespace that
    cannot be read is taken as not opted in, as the webhook fails open)."""

    read_labels: Callable[[str], dict[str, str]] | None = None
    #: Namespaces the watch has shown, and those of them labelled to opt in.
    known: set[str] = field(default_factory=set)
    enabled: set[str] = field(default_factory=set)

    def seen(self, name: str, opted_in: bool) -> None:
        """The watch showed namespace ``name``."""
        self.known.add(name)
        if opted_in:
            self.enabled.add(name)
        else:
            self.enabled.discard(name)

    def gone(self, name: str) -> None:
        """Namespace ``name`` was deleted."""
        self.known.discard(name)
        self.enabled.discard(name)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if name in self.known or self.read_labels is None:
            return name in self.enabled
        try:
            return label_opts_in(self.read_labels(name))
        except Exception as exc:  # fail open: the pod keeps the default scheduler
            log.warning("webhook: cannot read namespace %s to check its label: %s", name, exc)
            return False


def opted_in(pod: Any, enabled_namespaces: Container[str]) -> bool:
    """Whether a new pod asks for this scheduler: its annotation ``"true"`` or ``"false"``
    decides; without one, its namespace's label."""
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    choice = str(annotations.get(ENABLED, "")).lower()
    if choice in ("true", "false"):
        return choice == "true"
    if ENABLED in annotations:
        log.warning(
            'webhook: pod %s/%s: annotation %s: %r is neither "true" nor "false"; ignored',
            meta.get("namespace"),
            meta.get("name") or meta.get("generateName"),
            ENABLED,
            annotations[ENABLED],
        )
    return meta.get("namespace") in enabled_namespaces


def scheduler_for(pod: Any, enabled_namespaces: Container[str], ours: str) -> str | None:
    """The ``spec.schedulerName`` to give a new pod, or ``None`` to leave it as it is.

    Only a pod bound for the default scheduler (the API server's default for an empty
    name) that opted in is changed; a pod naming any other scheduler keeps it.
    """
    current = (pod.get("spec") or {}).get("schedulerName") or DEFAULT_SCHEDULER
    if current != DEFAULT_SCHEDULER or not opted_in(pod, enabled_namespaces):
        return None
    return ours


def register_webhook(
    registry: kopf.OperatorRegistry,
    settings: OperatorSettings,
    enabled_namespaces: Container[str],
) -> None:
    """Add the mutating handler for pod creation to ``registry``."""

    @kopf.on.mutate(
        "",
        "v1",
        "pods",
        id=HANDLER_ID,
        operations=["CREATE"],
        ignore_failures=True,
        side_effects=False,
        registry=registry,
    )
    def set_scheduler_name(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        name = scheduler_for(body, enabled_namespaces, settings.scheduler_name)
        if name is not None:
            patch.setdefault("spec", {})["schedulerName"] = name


def webhook_server(settings: OperatorSettings) -> kopf.WebhookServer:
    """kopf's webhook server: the certificate in ``webhook_cert_dir``, else a fresh
    self-signed one for the webhook host."""
    if settings.webhook_cert_dir:
        directory = Path(settings.webhook_cert_dir)
        return kopf.WebhookServer(
            addr=settings.webhook_addr or None,
            port=settings.webhook_port,
            host=settings.webhook_host or None,
            certfile=str(directory / CERT_FILE),
            pkeyfile=str(directory / KEY_FILE),
        )
    hosts = [settings.webhook_host]
    if settings.webhook_addr not in ("", "0.0.0.0", "::") and settings.webhook_addr not in hosts:
        hosts.append(settings.webhook_addr)
    tls = issue(hosts, Path(tempfile.mkdtemp(prefix="hybrid-scheduler-webhook-")))
    return kopf.WebhookServer(
        addr=settings.webhook_addr or None,
        port=settings.webhook_port,
        host=settings.webhook_host,
        certfile=str(tls.certfile),
        pkeyfile=str(tls.keyfile),
        cadata=tls.ca_pem,
    )


def managed_configuration(settings: OperatorSettings) -> str | None:
    """Name of the webhook configuration kopf should keep up to date, or None to leave
    it alone (the certificate, and so the configuration's CA, comes from elsewhere)."""
    return None if settings.webhook_cert_dir else WEBHOOK_NAME


def check_certificate_files(settings: OperatorSettings) -> None:
    """Raise :class:`SettingsError` unless ``webhook_cert_dir`` holds a readable pair."""
    if not (settings.webhook and settings.webhook_cert_dir):
        return
    for name in (CERT_FILE, KEY_FILE):
        path = Path(settings.webhook_cert_dir) / name
        try:
            path.read_bytes()
        except OSError as exc:
            raise SettingsError(f"webhook_cert_dir: cannot read {path}: {exc.strerror}") from None
