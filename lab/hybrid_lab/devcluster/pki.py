"""Certificates, service-account keys, static tokens and kubeconfigs of the dev cluster.

openssl makes a private CA, the API server's serving certificate for 127.0.0.1 and the
service-account signing key. Identities are static bearer tokens (``--token-auth-file``):
an admin in ``system:masters``, the control-plane components under their usual user
names, and non-admin users that RBAC restricts, so RBAC can be tested for real.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from hybrid_lab.devcluster.errors import DevClusterError, MissingToolError


@dataclass(frozen=True)
class Identity:
    """A user of the API server, authenticated by a static token."""

    name: str
    """User name, e.g. ``admin`` or ``system:kube-scheduler``."""
    groups: tuple[str, ...]
    """Groups the user belongs to (RBAC subjects)."""
    kubeconfig_name: str
    """File name of this identity's kubeconfig in the state directory."""


ADMIN = Identity("admin", ("system:masters",), "kubeconfig")
CONTROLLER_MANAGER = Identity("system:kube-controller-manager", (), "controller-manager.kubeconfig")
SCHEDULER = Identity("system:kube-scheduler", (), "scheduler.kubeconfig")
KWOK = Identity("kwok", ("system:masters",), "kwok.kubeconfig")
VIEWER = Identity("viewer", ("hybrid-scheduler:viewers",), "viewer.kubeconfig")
"""Bound to the ``view`` ClusterRole: reads namespaced objects, writes nothing."""
DEVELOPER = Identity("developer", ("hybrid-scheduler:developers",), "developer.kubeconfig")
"""Bound to the ``edit`` ClusterRole: manages pods, but not nodes or RBAC."""
SCHEDULER_PLUGINS = Identity(
    "scheduler-plugins", ("system:masters",), "scheduler-plugins.kubeconfig"
)
"""scheduler-plugins' kube-scheduler (a peer); it reads PodGroups and ElasticQuotas too."""
KUEUE = Identity("kueue", ("system:masters",), "kueue.kubeconfig")
"""Kueue's manager (a peer)."""
IDENTITIES = (
    ADMIN,
    CONTROLLER_MANAGER,
    SCHEDULER,
    KWOK,
    VIEWER,
    DEVELOPER,
    SCHEDULER_PLUGINS,
    KUEUE,
)


@dataclass(frozen=True)
class Pki:
    """Paths of the generated files."""

    directory: Path
    """Where all files live (``<state>/pki``)."""

    @property
    def ca_cert(self) -> Path:
        """CA certificate that signed the serving certificate."""
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        """CA private key."""
        return self.directory / "ca.key"

    @property
    def serving_cert(self) -> Path:
        """API server serving certificate (127.0.0.1, localhost, kubernetes.default)."""
        return self.directory / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        """API server serving key."""
        return self.directory / "apiserver.key"

    @property
    def sa_key(self) -> Path:
        """Service-account signing key (private)."""
        return self.directory / "sa.key"

    @property
    def sa_pub(self) -> Path:
        """Service-account verification key (public)."""
        return self.directory / "sa.pub"

    @property
    def token_file(self) -> Path:
        """Static token file given to the API server."""
        return self.directory / "tokens.csv"


def create_pki(directory: Path) -> Pki:
    """Generate the CA, serving certificate and service-account key pair (once)."""
    pki = Pki(directory)
    if pki.serving_cert.exists() and pki.sa_pub.exists():
        return pki
    if shutil.which("openssl") is None:
        raise MissingToolError("openssl is not installed; install the Debian package 'openssl'")
    directory.mkdir(parents=True, exist_ok=True)
    sans = "IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,IP:10.96.0.1"
    extensions = directory / "serving.ext"
    extensions.write_text(f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\n")
    csr = directory / "apiserver.csr"
    _openssl(
        directory,
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "3650",
        "-subj",
        "/CN=hybrid-scheduler-dev-ca",
        "-keyout",
        str(pki.ca_key),
        "-out",
        str(pki.ca_cert),
    )
    _openssl(
        directory,
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=kube-apiserver",
        "-keyout",
        str(pki.serving_key),
        "-out",
        str(csr),
    )
    _openssl(
        directory,
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(pki.ca_cert),
        "-CAkey",
        str(pki.ca_key),
        "-CAcreateserial",
        "-days",
        "3650",
        "-extfile",
        str(extensions),
        "-out",
        str(pki.serving_cert),
    )
    _openssl(directory, "genrsa", "-out", str(pki.sa_key), "2048")
    _openssl(directory, "rsa", "-in", str(pki.sa_key), "-pubout", "-out", str(pki.sa_pub))
    return pki


def _openssl(directory: Path, *args: str) -> None:
    log = directory / "openssl.log"
    with log.open("ab") as out:
        result = subprocess.run(
            ["openssl", *args], stdout=out, stderr=subprocess.STDOUT, check=False
        )
    if result.returncode != 0:
        raise DevClusterError(f"openssl {args[0]} failed; see the log at {log}")


def write_tokens_and_kubeconfigs(pki: Pki, state_dir: Path, server_url: str) -> None:
    """Write a fresh token per identity, and one kubeconfig per identity."""
    lines = []
    for uid, identity in enumerate(IDENTITIES, start=1):
        token = secrets.token_hex(24)
        groups = ",".join(identity.groups)
        lines.append(f'{token},{identity.name},{uid},"{groups}"')
        kubeconfig = state_dir / identity.kubeconfig_name
        write_kubeconfig(kubeconfig, server_url, pki.ca_cert, identity.name, token)
    pki.token_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    pki.token_file.chmod(0o600)


def write_kubeconfig(path: Path, server_url: str, ca_cert: Path, user: str, token: str) -> None:
    """Write a kubeconfig with one cluster, one user and one current context."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "hybrid-dev",
                "cluster": {"server": server_url, "certificate-authority": str(ca_cert)},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "hybrid-dev", "context": {"cluster": "hybrid-dev", "user": user}}],
        "current-context": "hybrid-dev",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)
