"""A small typed REST client for the dev cluster's API server.

The dev cluster only needs a handful of calls (create nodes and bindings, list nodes and
pods, read a service account), made with a bearer token from one of our kubeconfigs;
plain ``requests`` keeps them typed and fast, and every failure surfaces as a
:class:`ClusterApiError` with the status and the API server's own message.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import requests
import yaml

from hybrid_lab.devcluster.errors import ClusterApiError

TIMEOUT_SECONDS = 30.0


class ApiServer:
    """Calls the API server as the identity of one kubeconfig written by ``up``."""

    def __init__(self, server_url: str, token: str, ca_cert: str | bool) -> None:
        self.server_url = server_url.rstrip("/")
        self._token = token
        self._verify = ca_cert
        self._local = threading.local()

    @classmethod
    def from_kubeconfig(cls, path: Path) -> ApiServer:
        """Read server, token and CA from a kubeconfig of ours (one cluster, one user)."""
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8"))
            cluster = config["clusters"][0]["cluster"]
            token = config["users"][0]["user"]["token"]
        except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError) as err:
            raise ClusterApiError(f"cannot read the kubeconfig {path}: {err}") from err
        return cls(cluster["server"], token, cluster.get("certificate-authority", True))

    def _session(self) -> requests.Session:
        # One session per thread: requests sessions are not documented as thread-safe.
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            # Loopback only: no proxies, and no CA bundle from the environment overriding ours.
            session.trust_env = False
            session.headers["Authorization"] = f"Bearer {self._token}"
            session.verify = self._verify
            self._local.session = session
        return session

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send one request; connection failures become ClusterApiError."""
        try:
            return self._session().request(
                method,
                self.server_url + path,
                json=body,
                params=params,
                timeout=TIMEOUT_SECONDS,
                verify=self._verify,
            )
        except requests.RequestException as err:
            raise ClusterApiError(f"{method} {path}: cannot reach the API server: {err}") from err

    def stream(self, path: str, params: dict[str, str]) -> requests.Response:
        """Open a streaming GET (a watch); no read timeout, the caller closes it."""
        try:
            return self._session().get(
                self.server_url + path,
                params=params,
                stream=True,
                timeout=(TIMEOUT_SECONDS, None),
                verify=self._verify,
            )
        except requests.RequestException as err:
            raise ClusterApiError(f"GET {path}: cannot reach the API server: {err}") from err

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        allow: tuple[int, ...] = (),
    ) -> dict[str, Any]:
        """Send a request and return the JSON answer; raise unless 2xx or in ``allow``."""
        response = self.request(method, path, body, params)
        if response.ok or response.status_code in allow:
            answer: dict[str, Any] = response.json() if response.content else {}
            return answer
        raise ClusterApiError(f"{method} {path}: {response.status_code} {_message(response)}")

    def get(self, path: str, **params: str) -> dict[str, Any]:
        """GET ``path`` with query parameters."""
        return self.call("GET", path, params=params or None)

    def create(self, path: str, body: dict[str, Any], exist_ok: bool = False) -> dict[str, Any]:
        """POST ``body`` to the collection ``path``; 409 is fine when ``exist_ok``."""
        return self.call("POST", path, body, allow=(409,) if exist_ok else ())

    def delete(self, path: str) -> dict[str, Any]:
        """DELETE ``path``; a missing object is fine."""
        return self.call("DELETE", path, allow=(404,))

    def apply_server_side(
        self, collection: str, body: dict[str, Any], field_manager: str
    ) -> dict[str, Any]:
        """Server-side apply ``body`` into ``collection`` as ``field_manager``, taking over
        fields others own (for objects too large for client-side apply's annotation)."""
        path = f"{collection}/{body['metadata']['name']}"
        try:
            response = self._session().patch(
                self.server_url + path,
                data=json.dumps(body),
                params={"fieldManager": field_manager, "force": "true"},
                headers={"Content-Type": "application/apply-patch+yaml"},
                timeout=TIMEOUT_SECONDS,
                verify=self._verify,
            )
        except requests.RequestException as err:
            raise ClusterApiError(f"PATCH {path}: cannot reach the API server: {err}") from err
        if not response.ok:
            raise ClusterApiError(f"PATCH {path}: {response.status_code} {_message(response)}")
        answer: dict[str, Any] = response.json()
        return answer

    def items(self, path: str, **params: str) -> list[dict[str, Any]]:
        """The ``items`` of a list call."""
        items: list[dict[str, Any]] = self.get(path, **params).get("items", [])
        return items


def _message(response: requests.Response) -> str:
    try:
        return str(response.json().get("message", response.reason))
    except ValueError:
        return str(response.reason)
