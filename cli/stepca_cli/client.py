"""A small client for step-ca's HTTP API, verifying the CA with a pinned root."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509

from stepca.x509util import load_certificates
from stepca_cli.errors import StepError

if TYPE_CHECKING:
    from stepca_cli.httpclient import Response

MAX_RESPONSE_BYTES = 1024 * 1024


class CAError(StepError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class CAClient:
    def __init__(self, ca_url: str, *, root: Path | None) -> None:
        self.ca_url = ca_url.rstrip("/")
        self.root = root

    def _request(self, method: str, path: str, body: Any = None) -> Response:
        from stepca_cli import httpclient

        data = None if body is None else json.dumps(body).encode()
        response = httpclient.request(
            method, f"{self.ca_url}{path}", limit=MAX_RESPONSE_BYTES, body=data,
            headers={"Content-Type": "application/json"} if data is not None else None,
            context=httpclient.tls_context(cafile=str(self.root) if self.root else None))
        if response.status >= 400:
            raise CAError(response.status, _error_message(response))
        return response

    def get_json(self, path: str) -> Any:
        return _json(self._request("GET", path))

    def post_json(self, path: str, body: dict[str, Any]) -> Any:
        return _json(self._request("POST", path, body))

    def get_text(self, path: str) -> str:
        return self._request("GET", path).body.decode("utf-8", "replace")

    def provisioners(self) -> list[dict[str, Any]]:
        """Every provisioner, following ``nextCursor`` through all pages."""
        found: list[dict[str, Any]] = []
        cursor = ""
        for _ in range(1000):
            page = self.get_json(f"/provisioners?cursor={cursor}&limit=100")
            found.extend(page.get("provisioners") or [])
            cursor = page.get("nextCursor") or ""
            if not cursor:
                return found
        raise StepError("the CA's provisioner list does not end")


def _json(response: Response) -> Any:
    try:
        return json.loads(response.body)
    except ValueError:
        raise StepError(f"the CA answered {response.url} with something that is not JSON") from None


def _error_message(response: Response) -> str:
    try:
        message = json.loads(response.body).get("message")
        if isinstance(message, str) and message:
            return message
    except (ValueError, AttributeError):
        pass
    return f"{response.status} {response.reason}"


def fetch_root(ca_url: str, fingerprint: str) -> x509.Certificate:
    """The seed's three steps: fetch ``/root/<fp>`` without path validation, re-hash and
    compare, then validate the CA's own TLS certificate with the root just obtained."""
    from stepca_cli import httpclient
    from stepca.x509util import fingerprint as fp

    wanted = fingerprint.lower().replace("-", "").replace(":", "")
    base = ca_url.rstrip("/")
    answer = httpclient.request("GET", f"{base}/root/{wanted}", limit=MAX_RESPONSE_BYTES,
                                context=httpclient.tls_context(insecure=True))
    if answer.status >= 400:
        raise CAError(answer.status, _error_message(answer))
    try:
        pem = json.loads(answer.body)["ca"]
        root = load_certificates(pem.encode())[0]
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        raise StepError(f"the CA at {ca_url} did not answer with a root certificate") from None
    if fp(root) != wanted:
        raise StepError("root certificate fingerprint does not match")
    try:
        httpclient.request("GET", f"{base}/health", limit=MAX_RESPONSE_BYTES,
                           context=httpclient.tls_context(cadata=pem))
    except httpclient.TransportError as exc:
        if not exc.untrusted:  # unreachable, or the certificate is for other names
            raise
        raise StepError(f"the CA's TLS certificate does not validate with the root certificate "
                        f"of fingerprint {wanted}: {exc.reason}") from None
    return root
