"""A store that keeps everything in this process's memory.

For tests and for a ca.json without ``db`` (step-ca's behaviour): nothing survives a restart
and nothing is shared between processes, so the server runs a single worker with it. Every
process that loads plugins registers it (``stepca._memory_store``), and imports this module
only when a store registry is asked for."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from stepca.errors import TokenAlreadyUsed
from stepca.store import (AlreadyRevoked, CertificateRevoked, CertificateStore, ProvisionerRef,
                          Purged, RevocationInfo, RevocationStore, StoredCRL)

if TYPE_CHECKING:
    from cryptography import x509


class MemoryStore(CertificateStore, RevocationStore):
    type = "memory"
    shared_between_processes = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, datetime | None] = {}  # spent id -> when it may be forgotten
        self._certs: dict[int, tuple[x509.Certificate, ProvisionerRef | None]] = {}
        self._revoked: dict[int, RevocationInfo] = {}
        self._crl: StoredCRL | None = None

    def store_certificate(self, certificate: x509.Certificate, *,
                          provisioner: ProvisionerRef | None, token_id: str | None,
                          token_expires_at: datetime | None = None) -> None:
        with self._lock:
            if token_id is not None:
                self._spend(token_id, token_expires_at)
            self._certs[certificate.serial_number] = (certificate, provisioner)

    def store_renewed_certificate(self, certificate: x509.Certificate, *, renewed_from: int,
                                  provisioner: ProvisionerRef | None,
                                  token_id: str | None,
                                  token_expires_at: datetime | None = None) -> None:
        with self._lock:  # the lock revoke takes
            if renewed_from in self._revoked:
                raise CertificateRevoked()
            if token_id is not None:
                self._spend(token_id, token_expires_at)
            self._certs[certificate.serial_number] = (certificate, provisioner)

    def spend_token(self, token_id: str, *, token_expires_at: datetime | None = None) -> None:
        with self._lock:
            self._spend(token_id, token_expires_at)

    def _spend(self, token_id: str, expires_at: datetime | None) -> None:
        if token_id in self._tokens:
            raise TokenAlreadyUsed()
        self._tokens[token_id] = expires_at

    def purge(self, *, token_ids_expired_before: datetime,
              certificates_expired_before: datetime | None = None) -> Purged:
        with self._lock:
            tokens = [t for t, expires in self._tokens.items()
                      if expires is not None and expires < token_ids_expired_before]
            for token_id in tokens:
                del self._tokens[token_id]
            certificates = [] if certificates_expired_before is None else [
                serial for serial, (cert, _) in self._certs.items()
                if cert.not_valid_after_utc < certificates_expired_before]
            for serial in certificates:
                del self._certs[serial]
        return Purged(token_ids=len(tokens), certificates=len(certificates))

    def get_certificate(self, serial: int) -> tuple[x509.Certificate, ProvisionerRef | None] | None:
        return self._certs.get(serial)

    def revoke(self, info: RevocationInfo, *, token_expires_at: datetime | None = None) -> None:
        with self._lock:
            if info.token_id is not None and info.token_id in self._tokens:
                raise TokenAlreadyUsed()  # first: a replayed token is refused as a replay
            if info.serial in self._revoked:
                raise AlreadyRevoked(info.serial)
            if info.token_id is not None:
                self._spend(info.token_id, token_expires_at)
            self._revoked[info.serial] = info

    def is_revoked(self, serial: int) -> bool:
        return serial in self._revoked

    def revoked_certificates(self) -> list[RevocationInfo]:
        return list(self._revoked.values())

    def revocation(self, serial: int) -> RevocationInfo | None:
        return self._revoked.get(serial)

    def revocation_mark(self) -> int:
        return len(self._revoked)  # revocations are never removed

    def current_crl(self) -> StoredCRL | None:
        return self._crl

    def next_crl(self, build: Callable[[int], StoredCRL]) -> StoredCRL:
        with self._lock:
            self._crl = build((self._crl.number if self._crl else 0) + 1)
            return self._crl
