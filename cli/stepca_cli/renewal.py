"""Talking to the CA with a certificate: renewal over mutual TLS or with an x5cInsecure token,
and the renewal schedule of ``step ca renew --daemon``."""

from __future__ import annotations

import base64
import json
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from stepca.jose import jwk_from_key, sign_jwt
from stepca.timeutil import utcnow
from stepca.x509util import load_certificates, load_private_key, subject_cn
from stepca_cli.client import CAError, MAX_RESPONSE_BYTES
from stepca_cli.errors import StepError

RENEW_ISSUER = "step-ca-client/1.0"


@dataclass
class Credentials:
    """A certificate chain file and its private key, as ``step ca renew`` is given them."""

    crt_file: Path
    key_file: Path
    password: bytes | None = None

    def chain(self) -> list[x509.Certificate]:
        try:
            certs = load_certificates(self.crt_file.read_bytes())
        except FileNotFoundError:
            raise StepError(f"open {self.crt_file}: no such file or directory") from None
        except ValueError as exc:
            raise StepError(f"error reading {self.crt_file}: {exc}") from None
        if not certs:
            raise StepError(f"error reading {self.crt_file}: no certificate found")
        return certs

    def key(self) -> Any:
        try:
            return load_private_key(self.key_file.read_bytes(), self.password)
        except FileNotFoundError:
            raise StepError(f"open {self.key_file}: no such file or directory") from None
        except ValueError as exc:
            raise StepError(f"error reading {self.key_file}: {exc}") from None


def post(ca_url: str, path: str, *, root: Path, body: bytes = b"",
         headers: dict[str, str] | None = None, client: Credentials | None = None) -> Any:
    """POST to the CA verifying it with ``root``, optionally presenting a client certificate."""
    from stepca_cli import httpclient

    context = httpclient.tls_context(cafile=str(root))
    if client is not None:
        try:
            httpclient.load_client_certificate(context, client.crt_file, client.key_file,
                                               password=client.password or (lambda: b""))
        except OSError as exc:  # ssl.SSLError included
            raise StepError(f"error loading {client.crt_file} and {client.key_file}: {exc}") \
                from None
    response = httpclient.request("POST", f"{ca_url}{path}", limit=MAX_RESPONSE_BYTES,
                                  context=context, body=body,
                                  headers={"Content-Type": "application/json", **(headers or {})})
    data = response.body
    try:
        decoded = json.loads(data) if data else {}
    except ValueError:
        decoded = {}
    if response.status >= 400:
        message = decoded.get("message") if isinstance(decoded, dict) else None
        raise CAError(response.status, message or f"{response.status} {response.reason}")
    return decoded


def renew_token(chain: list[x509.Certificate], key: Any, ca_url: str) -> str:
    """step's renewal token: signed by the certificate's key, the chain in ``x5cInsecure``."""
    now = int(utcnow().timestamp())
    claims = {"aud": f"{ca_url}/renew", "iss": RENEW_ISSUER, "sub": subject_cn(chain[0].subject),
              "iat": now, "nbf": now, "exp": now + 300, "jti": secrets.token_hex(32)}
    x5c = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain]
    return sign_jwt(claims, key, headers={"kid": jwk_from_key(key)["kid"], "x5cInsecure": x5c})


def renew(ca_url: str, root: Path, credentials: Credentials, *, mtls: bool) -> list[str]:
    """Renew over mutual TLS, or with a token when asked to or when the certificate expired
    (an expired certificate cannot complete a TLS handshake)."""
    chain = credentials.chain()
    expired = utcnow() >= chain[0].not_valid_after_utc
    if mtls and not expired:
        answer = post(ca_url, "/renew", root=root, client=credentials)
    else:
        token = renew_token(chain, credentials.key(), ca_url)
        answer = post(ca_url, "/renew", root=root, headers={"Authorization": f"Bearer {token}"})
    certs = answer.get("certChain") or [answer.get("crt"), answer.get("ca")]
    return [c for c in certs if c]


def next_renewal(cert: x509.Certificate, *, expires_in: timedelta | None,
                 renew_period: timedelta | None, now: datetime | None = None) -> timedelta:
    """When to renew next: after two thirds of the lifetime by default, earlier by up to 1/20
    of it at random so a fleet started together does not renew together."""
    now = now or utcnow()
    remaining = cert.not_valid_after_utc - now
    if renew_period is not None:
        return renew_period if remaining - renew_period > timedelta(0) else timedelta(0)
    period = cert.not_valid_after_utc - cert.not_valid_before_utc
    wait = remaining - (expires_in if expires_in is not None else period / 3)
    jitter = period / 20
    if wait <= timedelta(0):
        return timedelta(0)
    if wait < jitter:
        return wait * random.random()
    return wait - jitter * random.random()
