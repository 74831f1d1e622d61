"""What ``GET /health`` checks: the store answers a read, and the intermediate key signs what
the intermediate certificate's public key verifies (a key in an HSM or a KMS can fail while the
CA runs). The key's test is remembered for a few seconds, so that /health cannot be used to
make the CA sign without end."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

from stepca.errors import StepCAError
from stepca.store import CertificateStore, RevocationStore, StoreUnavailable
from stepca.x509util import signature_hash

__all__ = ["HealthCheck", "HealthCheckFailed"]

log = logging.getLogger("stepca.health")

TEST_MESSAGE = b"stepca health check"
SIGNER_CHECK_SECONDS = 10.0


class HealthCheckFailed(StepCAError):
    """A part of the CA is broken: 500, with which part in the message (never a secret)."""

    status = 500


class HealthCheck:
    def __init__(self, *, certificates: CertificateStore, revocations: RevocationStore,
                 signer: Any, public_key: Any,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.certificates = certificates
        self.revocations = revocations
        self.signer = signer
        self.public_key = public_key
        self.clock = clock
        self._signer_checked: tuple[float, str | None] | None = None  # (when, problem)

    def run(self) -> None:
        """Raise ``StoreUnavailable`` (503, as every request then answers) when the store
        cannot be reached, ``HealthCheckFailed`` (500) when it fails otherwise or the key does
        not sign."""
        self._check_store()
        problem = self._signer_problem()
        if problem:
            raise HealthCheckFailed(problem)

    def _check_store(self) -> None:
        try:
            # cheap indexed reads; serial 0 is never issued (RFC 5280 serials are positive)
            self.certificates.get_certificate(0)
            if self.revocations is not self.certificates:
                self.revocations.is_revoked(0)
        except StoreUnavailable:
            raise
        except Exception:
            log.exception("health check: the store failed a read")
            raise HealthCheckFailed("the store failed a read; see the CA's log") from None

    def _signer_problem(self) -> str | None:
        now = self.clock()
        checked = self._signer_checked
        if checked is not None and 0 <= now - checked[0] < SIGNER_CHECK_SECONDS:
            return checked[1]
        problem = None
        try:
            digest = signature_hash(self.signer)  # as the CA signs certificates
            verify(self.public_key, sign(self.signer, TEST_MESSAGE, digest), TEST_MESSAGE,
                   digest)
        except InvalidSignature:
            log.error("health check: the intermediate key's test signature does not verify "
                      "with the intermediate certificate")
            problem = "the signing key's test signature does not verify"
        except Exception:
            log.exception("health check: the intermediate key cannot sign")
            problem = "the signing key cannot sign; see the CA's log"
        self._signer_checked = (now, problem)
        return problem


def sign(key: Any, message: bytes, digest: Any) -> bytes:
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        return key.sign(message)
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(message, padding.PKCS1v15(), digest)
    return key.sign(message, ec.ECDSA(digest))


def verify(public_key: Any, signature: bytes, message: bytes, digest: Any) -> None:
    """Raise ``InvalidSignature`` unless ``signature`` is ``sign``'s of ``message``."""
    if isinstance(public_key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        public_key.verify(signature, message)
    elif isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, message, padding.PKCS1v15(), digest)
    else:
        public_key.verify(signature, message, ec.ECDSA(digest))
