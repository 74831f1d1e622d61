"""The persistence interfaces: issued certificates, spent token ids and revocations.

A store plugin returns its classes from ``stepca_certificate_stores`` and
``stepca_revocation_stores``; ca.json's ``db.type`` selects one (``sqlite`` for the embedded
default). One class may implement both interfaces; the authority then builds it once.
Every process and thread of the CA uses the same store, so a token id spent by one gunicorn
worker is spent for all of them.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

from stepca.errors import (BadRequest, ConfigError, NotImplementedYet, ServiceUnavailable,
                           Unauthorized)

if TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "AlreadyRevoked",
    "CertificateRevoked",
    "StoredCRL",
    "CertificateStore",
    "ProvisionerRef",
    "Purged",
    "RevocationInfo",
    "RevocationStore",
    "StoreStartError",
    "StoreUnavailable",
]


@dataclass(frozen=True)
class ProvisionerRef:
    """Which provisioner authorized a certificate (step-ca's ``x509_certs_data``)."""

    id: str
    name: str
    type: str


@dataclass(frozen=True)
class RevocationInfo:
    serial: int
    provisioner_id: str
    reason_code: int
    reason: str
    revoked_at: datetime
    expires_at: datetime | None
    token_id: str | None
    mtls: bool = False


@dataclass(frozen=True)
class StoredCRL:
    number: int
    der: bytes
    this_update: datetime
    next_update: datetime
    revocation_mark: int | None = None
    """The store's ``revocation_mark()`` read before this CRL's entries: the CRL lists every
    revocation up to it, so a larger mark now means a revocation it misses. None: unknown."""


@dataclass(frozen=True)
class Purged:
    """What one ``CertificateStore.purge`` deleted."""

    token_ids: int = 0
    certificates: int = 0


class StoreStartError(ConfigError):
    """A store cannot be used as configured (a database newer than this code, unreachable,
    refused credentials). Raised by ``from_config``: ``step-ca`` prints it and does not start."""


class StoreUnavailable(ServiceUnavailable):
    """The database cannot be reached now (restarting, a lost connection, no pooled connection
    in time). A store raises it instead of its driver's error: the request in flight answers
    503, and nothing it did counts unless its transaction committed."""

    def __init__(self, reason: str = "its database cannot be reached; try again shortly") -> None:
        super().__init__(reason)


class AlreadyRevoked(BadRequest):
    def __init__(self, serial: int) -> None:
        super().__init__(f"certificate with serial number '{serial}' is already revoked")


class CertificateRevoked(Unauthorized):
    """A renewal's certificate was revoked (raised by ``store_renewed_certificate``)."""

    def __init__(self) -> None:
        super().__init__("certificate has been revoked")


class CertificateStore(abc.ABC):
    type: ClassVar[str]
    """The ``db.type`` value this class handles, e.g. ``"sqlite"``."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, steppath: Path) -> Self:
        """Build the store from ca.json's ``db`` object."""
        return cls()

    @abc.abstractmethod
    def store_certificate(self, certificate: x509.Certificate, *,
                          provisioner: ProvisionerRef | None, token_id: str | None,
                          token_expires_at: datetime | None = None) -> None:
        """Record an issued certificate and, in the same transaction, spend ``token_id``.

        ``token_expires_at``: when the spent id may be forgotten (see ``purge``); None keeps
        it for ever. Raises ``stepca.errors.TokenAlreadyUsed`` (and records nothing) if the id
        was spent."""

    def store_renewed_certificate(self, certificate: x509.Certificate, *, renewed_from: int,
                                  provisioner: ProvisionerRef | None,
                                  token_id: str | None,
                                  token_expires_at: datetime | None = None) -> None:
        """Record the certificate a renewal (or rekey) of serial ``renewed_from`` issued, as
        ``store_certificate`` does, unless ``renewed_from`` is revoked: then raise
        ``CertificateRevoked`` and record nothing.

        The check and the write must be atomic with ``RevocationStore.revoke`` (one
        transaction, or under the lock ``revoke`` takes), so that no renewal finishes after a
        revocation of its certificate returned. The default checks first, then writes: a
        store that keeps revocations should override it."""
        if isinstance(self, RevocationStore) and self.is_revoked(renewed_from):
            raise CertificateRevoked()
        self.store_certificate(certificate, provisioner=provisioner, token_id=token_id,
                               token_expires_at=token_expires_at)

    @abc.abstractmethod
    def spend_token(self, token_id: str, *, token_expires_at: datetime | None = None) -> None:
        """Spend a one-time token id; ``TokenAlreadyUsed`` if it was spent before."""

    def purge(self, *, token_ids_expired_before: datetime,
              certificates_expired_before: datetime | None = None) -> Purged:
        """Forget spent token ids whose ``token_expires_at`` is before the first cutoff (never
        one spent without an expiry) and, if the second is given, certificates whose validity
        ended before it. Revocations are kept. Runs in the background (``stepca.retention``),
        never on a request's path; delete in short transactions. Default: keeps everything."""
        return Purged()

    @abc.abstractmethod
    def get_certificate(self, serial: int) -> tuple[x509.Certificate, ProvisionerRef | None] | None:
        """An issued certificate and its provisioner, or None."""

    def close(self) -> None:
        """Release connections (called at shutdown and before a process forks)."""


class RevocationStore(abc.ABC):
    type: ClassVar[str]

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, steppath: Path) -> Self:
        return cls()

    @abc.abstractmethod
    def revoke(self, info: RevocationInfo, *, token_expires_at: datetime | None = None) -> None:
        """Record a revocation and spend ``info.token_id`` in one transaction, durably: once
        this returns, the revocation must survive a power loss, not only a crashed process.
        ``token_expires_at`` as for ``CertificateStore.store_certificate``.

        Raises ``AlreadyRevoked`` or ``TokenAlreadyUsed`` and records nothing."""

    @abc.abstractmethod
    def is_revoked(self, serial: int) -> bool: ...

    @abc.abstractmethod
    def revoked_certificates(self) -> list[RevocationInfo]: ...

    def revocation(self, serial: int) -> RevocationInfo | None:
        """The revocation of ``serial``, or None."""
        return next((r for r in self.revoked_certificates() if r.serial == serial), None)

    def revocation_mark(self) -> int:
        """A number that grows with every revocation recorded and never shrinks, shared by
        every process using the store. The CA reads it on each ``GET /crl`` to tell whether the
        stored CRL misses a revocation (its rebuild cut short by a crash, say): make it cheap.
        The default counts the revocations, which is right only if none is ever deleted."""
        return len(self.revoked_certificates())

    def current_crl(self) -> StoredCRL | None:
        """The newest CRL this store keeps, or None."""
        raise NotImplementedYet(f"the {self.type} store keeps no CRL")

    def next_crl(self, build: Callable[[int], StoredCRL]) -> StoredCRL:
        """Atomically take the next CRL number, call ``build(number)`` and keep its result
        (every field, ``revocation_mark`` included), so CRL numbers grow across every process
        sharing the store."""
        raise NotImplementedYet(f"the {self.type} store keeps no CRL")

    def close(self) -> None:
        """Release connections."""
