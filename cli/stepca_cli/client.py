"""A small client for step-ca's HTTP API, verifying the CA with a pinned root."""

from __future__ import annotations

import http.client
import json
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests
from cryptography import x509

from stepca.x509util import load_certificates
from stepca_cli.errors import StepError

TIMEOUT = 30
MAX_RESPONSE_BYTES = 1024 * 1024


class CAError(StepError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class CAClient:
    def __init__(self, ca_url: str, *, root: Path | None) -> None:
        self.ca_url = ca_url.rstrip("/")
        self.root = root
        self.session = requests.Session()
        # Passed on every request: a session-level verify loses to REQUESTS_CA_BUNDLE.
        self.verify: str | bool = str(root) if root else True

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.ca_url}{path}"
        try:
            response = self.session.request(method, url, timeout=TIMEOUT, verify=self.verify,
                                            **kwargs)
        except requests.exceptions.SSLError as exc:
            raise StepError(f"client {method} {url} failed: the CA's certificate does not "
                            f"verify with the root {self.root}: {_reason(exc)}") from None
        except requests.exceptions.RequestException as exc:
            raise StepError(f"client {method} {url} failed: {_reason(exc)}") from None
        if response.status_code >= 400:
            raise CAError(response.status_code, _error_message(response))
        return response

    def get_json(self, path: str) -> Any:
        return _json(self._request("GET", path))

    def post_json(self, path: str, body: dict[str, Any]) -> Any:
        return _json(self._request("POST", path, json=body))

    def get_text(self, path: str) -> str:
        return self._request("GET", path).text

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


def _reason(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "..."


def _json(response: requests.Response) -> Any:
    if len(response.content) > MAX_RESPONSE_BYTES:
        raise StepError("the CA's response is too large")
    try:
        return response.json()
    except ValueError:
        raise StepError(f"the CA answered {response.url} with something that is not JSON") from None


def _error_message(response: requests.Response) -> str:
    try:
        body = response.json()
        message = body.get("message")
        if isinstance(message, str) and message:
            return message
    except ValueError:
        pass
    return f"{response.status_code} {response.reason}"


def fetch_root(ca_url: str, fingerprint: str) -> x509.Certificate:
    """The seed's three steps: fetch ``/root/<fp>`` without path validation, re-hash and
    compare, then validate the CA's own TLS certificate with the root just obtained."""
    wanted = fingerprint.lower().replace("-", "").replace(":", "")
    parsed = urlparse(ca_url)
    host, port = parsed.hostname or "", parsed.port or 443
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    body = _https_get(host, port, f"/root/{wanted}", insecure)
    try:
        pem = json.loads(body)["ca"]
        root = load_certificates(pem.encode())[0]
    except (ValueError, KeyError, TypeError, IndexError):
        raise StepError(f"the CA at {ca_url} did not answer with a root certificate") from None
    from stepca.x509util import fingerprint as fp

    if fp(root) != wanted:
        raise StepError("root certificate fingerprint does not match")
    verified = ssl.create_default_context(cadata=pem)
    try:
        _https_get(host, port, "/health", verified)
    except ssl.SSLError as exc:
        raise StepError(f"the CA's TLS certificate does not validate with the root certificate "
                        f"of fingerprint {wanted}: {exc.reason or exc}") from None
    return root


def _https_get(host: str, port: int, path: str, context: ssl.SSLContext) -> bytes:
    conn = http.client.HTTPSConnection(host, port, context=context, timeout=TIMEOUT)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read(MAX_RESPONSE_BYTES + 1)
    except ssl.SSLError:
        raise
    except OSError as exc:
        raise StepError(f"client GET https://{host}:{port}{path} failed: {exc}") from None
    finally:
        conn.close()
    if response.status >= 400:
        message = f"{response.status} {response.reason}"
        try:
            message = json.loads(body).get("message") or message
        except ValueError:
            pass
        raise CAError(response.status, message)
    return body


def fetch(method: str, url: str, *, limit: int, timeout: float = 30,
          **kwargs: Any) -> tuple[requests.Response, bytes | None]:
    """The response and at most ``limit`` bytes of its body, or ``None`` when the body is
    longer: the rest is never read. ``requests.RequestException`` propagates."""
    with requests.request(method, url, timeout=timeout, stream=True, **kwargs) as response:
        body = b""
        for chunk in response.iter_content(64 * 1024):
            body += chunk
            if len(body) > limit:
                return response, None
        return response, body
