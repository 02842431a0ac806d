import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from hybrid_operator.certificates import issue
from hybrid_operator.settings import OperatorSettings, SettingsError
from hybrid_operator.webhook import opted_in


def _pod(namespace: str, annotations: dict[str, str] | None = None) -> dict[str, object]:
    return {"metadata": {"namespace": namespace, "annotations": annotations or {}}, "spec": {}}


def test_opt_in_by_annotation_or_namespace_label() -> None:
    assert opted_in(_pod("a", {"hybrid-scheduler.io/enabled": "true"}), set())
    assert opted_in(_pod("a", {"hybrid-scheduler.io/enabled": "True"}), set())
    assert opted_in(_pod("labelled"), {"labelled"})
    assert not opted_in(_pod("a"), {"labelled"})
    assert not opted_in(_pod("a", {"hybrid-scheduler.io/enabled": "yes please"}), set())


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
