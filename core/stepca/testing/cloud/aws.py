"""An EC2 instance metadata service (IMDS) on 127.0.0.1: IMDSv2 sessions (``PUT
/latest/api/token``), IMDSv1 plain GETs, and the instance identity document with its RSA-SHA256
signature (the ``signature`` endpoint step-ca verifies), signed by a test key whose certificate
a CA's ``iidRoots`` can trust."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from ._server import MetadataEmulator, Reply, Request, b64

TOKEN_PATH = "/latest/api/token"
DOCUMENT_PATH = "/latest/dynamic/instance-identity/document"
SIGNATURE_PATH = "/latest/dynamic/instance-identity/signature"
TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "x-aws-ec2-metadata-token"
MAX_TTL = 21600  # IMDS refuses longer sessions


@dataclass(frozen=True)
class AwsInstance:
    """The fields of the instance identity document (camelCase on the wire)."""

    account_id: str = "123456789012"
    instance_id: str = "i-0123456789abcdef0"
    private_ip: str = "10.0.1.17"
    region: str = "us-east-1"
    availability_zone: str = "us-east-1a"
    pending_time: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    image_id: str = "ami-0abcdef1234567890"
    instance_type: str = "t3.micro"
    architecture: str = "x86_64"

    def document(self) -> bytes:
        """The document as IMDS serves it: pretty-printed JSON, ``" : "`` separators."""
        fields: dict[str, Any] = {
            "accountId": self.account_id, "architecture": self.architecture,
            "availabilityZone": self.availability_zone, "billingProducts": None,
            "devpayProductCodes": None, "marketplaceProductCodes": None,
            "imageId": self.image_id, "instanceId": self.instance_id,
            "instanceType": self.instance_type, "kernelId": None,
            "pendingTime": self.pending_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "privateIp": self.private_ip, "ramdiskId": None, "region": self.region,
            "version": "2017-09-30"}
        return json.dumps(fields, indent=2, separators=(",", " : ")).encode()


class AwsImdsEmulator(MetadataEmulator):
    """``imds_versions`` says which protocol versions answer: without ``"v2"`` the token PUT is
    404 (an IMDS that only knows v1, so clients fall back); without ``"v1"`` a GET with no
    session token is 401 (``HttpTokens: required``)."""

    def __init__(self, instance: AwsInstance | None = None,
                 imds_versions: tuple[str, ...] = ("v2", "v1")) -> None:
        super().__init__()
        self.instance = instance or AwsInstance()
        self.imds_versions = imds_versions
        self._sessions: dict[str, float] = {}  # token -> monotonic expiry

    @property
    def certificate_pem(self) -> bytes:
        """The certificates to trust (``iidRoots``): they verify the genuine signatures."""
        return b"".join(key.certificate_pem for key in self.published)

    def identity(self, **changes: Any) -> tuple[bytes, bytes]:
        """The document (with ``changes`` to the instance) and its raw signature, as a client
        obtains them; signed by ``forger`` when one is set."""
        document = replace(self.instance, **changes).document()
        signature = self.active_key.private.sign(document, padding.PKCS1v15(), hashes.SHA256())
        return document, signature

    def answer(self, request: Request) -> Reply:
        if request.path == TOKEN_PATH:
            return self._open_session(request)
        if request.method != "GET":
            return Reply(405, b"Method Not Allowed\n")
        token = request.headers.get(TOKEN_HEADER)
        if token is None and "v1" not in self.imds_versions:
            return Reply(401, b"Unauthorized\n")
        if token is not None and self._sessions.get(token, 0) < time.monotonic():
            return Reply(401, b"Unauthorized\n")
        document, signature = self.identity()
        if request.path == DOCUMENT_PATH:
            return Reply(200, document)
        if request.path == SIGNATURE_PATH:
            return Reply(200, b64(signature).encode())
        return Reply(404, b"Not Found\n")

    def _open_session(self, request: Request) -> Reply:
        if request.method != "PUT" or "v2" not in self.imds_versions:
            return Reply(404 if "v2" not in self.imds_versions else 405, b"Not Found\n")
        if "x-forwarded-for" in request.headers:
            return Reply(403, b"Forbidden\n")  # IMDS refuses requests that came through a proxy
        ttl = request.headers.get(TTL_HEADER, "")
        if not ttl.isdigit() or not 1 <= int(ttl) <= MAX_TTL:
            return Reply(400, b"Bad Request\n")
        now = time.monotonic()
        self._sessions = {t: end for t, end in self._sessions.items() if end > now}
        token = secrets.token_urlsafe(32)
        self._sessions[token] = now + int(ttl)
        return Reply(200, token.encode(), headers=((TTL_HEADER, ttl),))


__all__ = ["AwsImdsEmulator", "AwsInstance"]
