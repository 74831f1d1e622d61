"""A store that keeps everything in this process's memory.

For tests and for a ca.json without ``db`` (step-ca's behaviour): nothing survives a restart
and nothing is shared between processes, so the server runs a single worker with it."""

from __future__ import annotations

import threading
from collections.abc import Callable

from cryptography import x509

from stepca import hookimpl
from stepca.errors import TokenAlreadyUsed
from stepca.store import (AlreadyRevoked, CertificateRevoked, CertificateStore, ProvisionerRef,
                          RevocationInfo, RevocationStore, StoredCRL)


class MemoryStore(CertificateStore, RevocationStore):
    type = "memory"
    shared_between_processes = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: set[str] = set()
        self._certs: dict[int, tuple[x509.Certificate, ProvisionerRef | None]] = {}
        self._revoked: dict[int, RevocationInfo] = {}
        self._crl: StoredCRL | None = None

    def store_certificate(self, certificate: x509.Certificate, *,
                          provisioner: ProvisionerRef | None, token_id: str | None) -> None:
        with self._lock:
            if token_id is not None:
                self._spend(token_id)
            self._certs[certificate.serial_number] = (certificate, provisioner)

    def store_renewed_certificate(self, certificate: x509.Certificate, *, renewed_from: int,
                                  provisioner: ProvisionerRef | None,
                                  token_id: str | None) -> None:
        with self._lock:  # the lock revoke takes
            if renewed_from in self._revoked:
                raise CertificateRevoked()
            if token_id is not None:
                self._spend(token_id)
            self._certs[certificate.serial_number] = (certificate, provisioner)

    def spend_token(self, token_id: str) -> None:
        with self._lock:
            self._spend(token_id)

    def _spend(self, token_id: str) -> None:
        if token_id in self._tokens:
            raise TokenAlreadyUsed()
        self._tokens.add(token_id)

    def get_certificate(self, serial: int) -> tuple[x509.Certificate, ProvisionerRef | None] | None:
        return self._certs.get(serial)

    def revoke(self, info: RevocationInfo) -> None:
        with self._lock:
            if info.token_id is not None and info.token_id in self._tokens:
                raise TokenAlreadyUsed()  # first: a replayed token is refused as a replay
            if info.serial in self._revoked:
                raise AlreadyRevoked(info.serial)
            if info.token_id is not None:
                self._spend(info.token_id)
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


@hookimpl
def stepca_certificate_stores() -> list[type[CertificateStore]]:
    return [MemoryStore]


@hookimpl
def stepca_revocation_stores() -> list[type[RevocationStore]]:
    return [MemoryStore]
