"""Opt-in by annotation or namespace label: a mutating admission webhook (kopf).

A pod created with the annotation ``hybrid-scheduler.io/enabled: "true"``, or in a
namespace labelled ``hybrid-scheduler.io/enabled=true``, that would go to the default
scheduler gets ``spec.schedulerName`` set to ours. Pods that already name a scheduler of
their own are left alone. The webhook fails open (``failurePolicy: Ignore``): if the
operator is down, pods are created as they are and the default scheduler places them.
kopf manages the ``MutatingWebhookConfiguration`` (named after ``webhook_name``) and the
TLS comes from :mod:`hybrid_operator.certificates`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import kopf

from hybrid_operator.certificates import issue
from hybrid_operator.settings import OperatorSettings

ENABLED = "hybrid-scheduler.io/enabled"
DEFAULT_SCHEDULER = "default-scheduler"
WEBHOOK_NAME = "hybrid-scheduler.io"


def opted_in(pod: Any, enabled_namespaces: set[str]) -> bool:
    """Whether a new pod asks for this scheduler (annotation, or its namespace's label)."""
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if str(annotations.get(ENABLED, "")).lower() == "true":
        return True
    return meta.get("namespace") in enabled_namespaces


def register_webhook(
    registry: kopf.OperatorRegistry, settings: OperatorSettings, enabled_namespaces: set[str]
) -> None:
    """Add the mutating handler for pod creation to ``registry``."""

    @kopf.on.mutate(
        "",
        "v1",
        "pods",
        id="opt-in",
        operations=["CREATE"],
        ignore_failures=True,
        side_effects=False,
        registry=registry,
    )
    def set_scheduler_name(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        current = (body.get("spec") or {}).get("schedulerName") or DEFAULT_SCHEDULER
        if current == DEFAULT_SCHEDULER and opted_in(body, enabled_namespaces):
            patch.setdefault("spec", {})["schedulerName"] = settings.scheduler_name


def webhook_server(settings: OperatorSettings) -> kopf.WebhookServer:
    """kopf's webhook server with a fresh self-signed certificate for the webhook host."""
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
