"""The chart's webhook certificate without a cluster: its lifetime, the expiry it records,
and the upgrade rule (kept, or renewed near expiry with the old CA still trusted).

``helm template`` cannot look the existing Secret up, so the renewal tests render a copy
of the chart in which the template that does the lookup answers a given Secret."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from chart_helpers import CHART_DIR, documents, helm, one, render, run_helm
from hybrid_lab.manifests import Chart

NOT_AFTER = "hybrid-scheduler.io/certificate-not-after"
LOOKUP_TEMPLATE = "hybrid-scheduler.existingWebhookSecret"


def _certificate(b64: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(b64))


def _tls(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], str, str]:
    """The Secret, the configuration's caBundle and the Deployment's checksum."""
    secret = one(objects, "Secret", "webhook-tls")
    bundle = one(objects, "MutatingWebhookConfiguration")["webhooks"][0]["clientConfig"]
    annotations = one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    return secret, bundle["caBundle"], annotations["checksum/webhook-tls"]


def _render_finding(tmp_path: Path, existing: dict[str, Any], *args: str) -> list[dict[str, Any]]:
    """The chart rendered as if ``existing`` were the Secret already in the cluster."""
    copy = tmp_path / "chart"
    shutil.copytree(CHART_DIR, copy)
    # Helm reads this file's definition in place of the lookup in _helpers.tpl.
    (copy / "templates" / "_00-existing-secret.tpl").write_text(
        f'{{{{- define "{LOOKUP_TEMPLATE}" -}}}}{json.dumps(existing)}{{{{- end -}}}}\n'
    )
    return documents(Chart(helm(), copy).template(*args, release="hybrid-scheduler"))


def _existing(expires: dt.datetime | None, **extra: str) -> dict[str, Any]:
    annotations = {NOT_AFTER: expires.strftime("%Y-%m-%dT%H:%M:%SZ")} if expires else {}
    data = {"tls.crt": "b2xkLWNydA==", "tls.key": "b2xkLWtleQ==", "ca.crt": "b2xkLWNh", **extra}
    return {"metadata": {"annotations": annotations}, "data": data}


def test_the_certificate_lives_a_year_and_the_secret_says_until_when() -> None:
    secret, bundle, checksum = _tls(render())
    cert, ca = _certificate(secret["data"]["tls.crt"]), _certificate(secret["data"]["ca.crt"])
    for c in (cert, ca):
        assert c.not_valid_after_utc - c.not_valid_before_utc == dt.timedelta(days=365)
    recorded = dt.datetime.fromisoformat(secret["metadata"]["annotations"][NOT_AFTER])
    assert abs(recorded - cert.not_valid_after_utc) < dt.timedelta(minutes=1)
    assert bundle == secret["data"]["ca.crt"]
    assert "ca-previous.crt" not in secret["data"]
    # A new certificate rolls the pods, which read it at start.
    assert checksum == hashlib.sha256(secret["data"]["tls.crt"].encode()).hexdigest()


def test_an_upgrade_keeps_a_certificate_far_from_expiry(tmp_path: Path) -> None:
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=31)
    existing = _existing(expires, **{"ca-previous.crt": "b2xkZXItY2E="})
    secret, bundle, checksum = _tls(_render_finding(tmp_path, existing))
    assert secret["data"] == existing["data"]
    assert secret["metadata"]["annotations"] == existing["metadata"]["annotations"]
    assert base64.b64decode(bundle) == b"old-ca" + b"older-ca"
    assert checksum == hashlib.sha256(b"b2xkLWNydA==").hexdigest()


@pytest.mark.parametrize(
    "existing",
    [
        _existing(dt.datetime.now(dt.UTC) + dt.timedelta(days=29)),
        _existing(dt.datetime.now(dt.UTC) - dt.timedelta(days=1)),
        _existing(None),  # made by an older chart: its expiry is unknown
    ],
    ids=["expires-within-30-days", "expired", "unknown-expiry"],
)
def test_an_upgrade_renews_a_certificate_near_expiry_and_still_trusts_the_old_ca(
    tmp_path: Path, existing: dict[str, Any]
) -> None:
    secret, bundle, checksum = _tls(_render_finding(tmp_path, existing))
    assert secret["data"]["tls.crt"] != existing["data"]["tls.crt"]
    cert = _certificate(secret["data"]["tls.crt"])
    assert cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=364)
    assert secret["data"]["ca-previous.crt"] == existing["data"]["ca.crt"]
    assert base64.b64decode(bundle) == base64.b64decode(secret["data"]["ca.crt"]) + b"old-ca"
    assert checksum == hashlib.sha256(secret["data"]["tls.crt"].encode()).hexdigest()


def test_the_renewal_threshold_is_a_setting(tmp_path: Path) -> None:
    existing = _existing(dt.datetime.now(dt.UTC) + dt.timedelta(days=50))
    kept, _, _ = _tls(_render_finding(tmp_path / "a", existing))
    assert kept["data"] == existing["data"]
    args = ("--set", "webhook.certificateRenewBeforeDays=60")
    renewed, _, _ = _tls(_render_finding(tmp_path / "b", existing, *args))
    assert renewed["data"]["tls.crt"] != existing["data"]["tls.crt"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            ["webhook.certificateRenewBeforeDays=-1"],
            "at '/webhook/certificateRenewBeforeDays': minimum: got -1, want 0",
        ),
        (
            ["webhook.certificateRenewBeforeDays=400"],
            "webhook.certificateRenewBeforeDays: 400 must be less than "
            "webhook.certificateValidityDays (365)",
        ),
    ],
)
def test_a_bad_renewal_threshold_is_refused_naming_the_field(
    values: list[str], message: str
) -> None:
    args = [a for v in values for a in ("--set", v)]
    result = run_helm("template", "x", str(CHART_DIR), *args)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
