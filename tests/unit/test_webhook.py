import ipaddress
import logging
from collections.abc import Callable, Container
from pathlib import Path
from typing import Any, cast

import kopf
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from fake_api import FakeApi
from hybrid_operator.certificates import issue
from hybrid_operator.settings import OperatorSettings, SettingsError
from hybrid_operator.webhook import (
    WEBHOOK_NAME,
    NamespaceOptIn,
    check_certificate_files,
    managed_configuration,
    opted_in,
    register_webhook,
    scheduler_for,
    webhook_server,
)


def _pod(
    namespace: str, annotations: dict[str, str] | None = None, scheduler: str | None = None
) -> dict[str, Any]:
    spec = {"schedulerName": scheduler} if scheduler is not None else {}
    return {"metadata": {"namespace": namespace, "annotations": annotations or {}}, "spec": spec}


def test_opt_in_by_annotation_or_namespace_label() -> None:
    assert opted_in(_pod("a", {"hybrid-scheduler.io/enabled": "true"}), set())
    assert opted_in(_pod("a", {"hybrid-scheduler.io/enabled": "True"}), set())
    assert opted_in(_pod("labelled"), {"labelled"})
    assert not opted_in(_pod("a"), {"labelled"})
    assert not opted_in(_pod("a", {"hybrid-scheduler.io/enabled": "yes please"}), set())


def _mutate(pod: dict[str, Any], enabled_namespaces: Container[str]) -> dict[str, Any]:
    """What the registered admission handler patches into ``pod``."""
    registry = kopf.OperatorRegistry()
    register_webhook(registry, OperatorSettings(scheduler_name="ours"), enabled_namespaces)
    (handler,) = registry._webhooks.get_all_handlers()  # kopf keeps no public accessor
    patch, fn = kopf.Patch(), cast(Callable[..., None], handler.fn)
    fn(body=kopf.Body(cast(kopf.RawBody, pod)), patch=patch)
    return dict(patch)


def test_a_labelled_namespace_sends_default_scheduler_pods_to_us() -> None:
    # The API server has already turned an empty schedulerName into default-scheduler.
    pod = _pod("labelled", scheduler="default-scheduler")
    assert _mutate(pod, {"labelled"}) == {"spec": {"schedulerName": "ours"}}
    assert _mutate(_pod("labelled"), {"labelled"}) == {"spec": {"schedulerName": "ours"}}
    assert _mutate(pod, {"other"}) == {}


def test_a_namespace_the_watch_has_not_shown_yet_is_read_from_the_api_server() -> None:
    # `kubectl apply -f` of a folder creates a labelled namespace and its pods at once: the
    # first pods may come before the namespace's watch event.
    api = FakeApi()
    api.namespace_labels = {"new": {"hybrid-scheduler.io/enabled": "true"}, "plain": {}}
    namespaces = NamespaceOptIn(api.read_namespace_labels)
    assert _mutate(_pod("new"), namespaces) == {"spec": {"schedulerName": "ours"}}
    assert _mutate(_pod("plain"), namespaces) == {}
    # Unreadable (the API server down, or no such namespace): fail open, default scheduler.
    assert _mutate(_pod("missing"), namespaces) == {}
    assert api.namespace_reads == ["new", "plain", "missing"]
    # Once the watch has shown a namespace, its label there decides, with no API call.
    namespaces.seen("new", opted_in=False)
    namespaces.seen("labelled", opted_in=True)
    assert _mutate(_pod("new"), namespaces) == {}
    assert _mutate(_pod("labelled"), namespaces) == {"spec": {"schedulerName": "ours"}}
    namespaces.gone("labelled")
    assert _mutate(_pod("labelled"), namespaces) == {}
    assert api.namespace_reads == ["new", "plain", "missing", "labelled"]


def test_a_pod_that_says_so_keeps_the_default_scheduler_in_a_labelled_namespace() -> None:
    keep = _pod("labelled", {"hybrid-scheduler.io/enabled": "false"}, "default-scheduler")
    assert _mutate(keep, {"labelled"}) == {}
    assert scheduler_for(keep, {"labelled"}, "ours") is None


@pytest.mark.parametrize("name", ["volcano", "kube-scheduler-2", "ours"])
def test_a_pod_naming_another_scheduler_keeps_it(name: str) -> None:
    opted = _pod("labelled", {"hybrid-scheduler.io/enabled": "true"}, name)
    assert _mutate(opted, {"labelled"}) == {}


def test_an_unreadable_opt_in_annotation_is_logged_and_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pod = _pod("labelled", {"hybrid-scheduler.io/enabled": "yes please"}, "default-scheduler")
    with caplog.at_level(logging.WARNING, logger="hybrid_scheduler"):
        assert scheduler_for(pod, {"labelled"}, "ours") == "ours"
    assert "annotation hybrid-scheduler.io/enabled: 'yes please' is neither" in caplog.text


def test_serving_certificate_is_signed_by_the_bundled_ca(tmp_path: Path) -> None:
    tls = issue(["hybrid-scheduler.ml.svc", "127.0.0.1"], tmp_path / "tls")
    ca = x509.load_pem_x509_certificate(tls.ca_pem)
    cert = x509.load_pem_x509_certificate(tls.certfile.read_bytes())
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    assert cert.signature_hash_algorithm is not None
    ca_key.verify(
        cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm)
    )
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["hybrid-scheduler.ml.svc"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert oct(tls.keyfile.stat().st_mode & 0o777) == "0o600"


def test_webhook_needs_a_host() -> None:
    with pytest.raises(SettingsError, match="webhook_host: required"):
        OperatorSettings(webhook=True).validate()


def test_self_issued_mode_manages_the_configuration() -> None:
    settings = OperatorSettings(webhook=True, webhook_host="127.0.0.1", webhook_port=9443)
    assert managed_configuration(settings) == WEBHOOK_NAME
    server = webhook_server(settings)
    assert server.cadata is not None  # the fresh CA, which kopf puts into the configuration
    assert server.certfile is not None and Path(server.certfile).is_file()


def test_certificate_directory_mode_serves_the_files_and_leaves_the_configuration(
    tmp_path: Path,
) -> None:
    issue(["hybrid-scheduler.ml.svc"], tmp_path)
    settings = OperatorSettings(webhook=True, webhook_cert_dir=str(tmp_path)).validate()
    assert managed_configuration(settings) is None
    server = webhook_server(settings)
    assert (server.certfile, server.pkeyfile) == (
        str(tmp_path / "tls.crt"),
        str(tmp_path / "tls.key"),
    )
    assert server.cadata is None  # no CA of its own: the configuration carries the chart's
    check_certificate_files(settings)


def test_a_certificate_directory_without_the_files_is_refused(tmp_path: Path) -> None:
    settings = OperatorSettings(webhook=True, webhook_cert_dir=str(tmp_path)).validate()
    with pytest.raises(SettingsError, match=f"webhook_cert_dir: cannot read {tmp_path}/tls.crt"):
        check_certificate_files(settings)
