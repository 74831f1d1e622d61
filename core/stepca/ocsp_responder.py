"""The OCSP responder (RFC 6960, in RFC 5019's lightweight profile; decision 0013).

Every request is read defensively: whatever cannot be read is answered with an unsigned
``malformedRequest``, and a CertID this CA cannot answer for (another issuer, a hash other than
SHA-1 or SHA-2) with ``unauthorized``; nothing a client sends is a 500. The status is read from
the store on every request (several processes share it); the signed answer is cached per
(serial, CertID hash, status) until shortly before its ``nextUpdate``, so a flood of identical
requests costs one signature, and a revocation, which changes the status, is answered at once.
Nonces are ignored (RFC 5019 §4): an answer that echoed one could not be cached."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from stepca import _der
from stepca.revocation_lists import REASONS
from stepca.store import CertificateStore, RevocationInfo, RevocationStore, StoreUnavailable
from stepca.x509util import signature_hash

__all__ = ["AnswerCache", "CertificateStatus", "OCSPResponder", "Refused", "StoredStatus",
           "read_request"]

# CertID hashes answered: SHA-1 (what most clients send) and SHA-2. MD5 is refused, whatever
# else cryptography cannot name (SHA-3, unknown OIDs) cannot be matched to our issuer.
ANSWERED_HASHES: dict[str, hashes.HashAlgorithm] = {
    h.name: h for h in (hashes.SHA1(), hashes.SHA224(), hashes.SHA256(), hashes.SHA384(),
                        hashes.SHA512())}
MAX_SERIAL = 2**160 - 1  # RFC 5280 §4.1.2.2: positive, at most 20 octets
VALIDITY = timedelta(hours=1)
REFRESH_BEFORE = timedelta(minutes=10)
"""A cached answer is signed anew this long before its nextUpdate, so none served is stale."""
MAX_CACHED_ANSWERS = 4096  # ~1 KB each: a few MB per process at most


class Refused(Exception):
    """The request gets an unsigned error status instead of an answer."""

    def __init__(self, status: ocsp.OCSPResponseStatus) -> None:
        super().__init__(status.name)
        self.status = status


@dataclass(frozen=True)
class CertID:
    """What one request asks about, once read: a serial and the hash its CertID uses."""

    serial: int
    algorithm: hashes.HashAlgorithm
    issuer_name_hash: bytes
    issuer_key_hash: bytes


@dataclass(frozen=True)
class CertificateStatus:
    """What the store says about a serial right now."""

    status: ocsp.OCSPCertStatus
    revocation: RevocationInfo | None = None

    @property
    def cache_key(self) -> Hashable:
        info = self.revocation
        return (self.status, info.revoked_at, info.reason_code) if info else self.status


@dataclass(frozen=True)
class StoredStatus:
    """A serial's status as the stores hold it, read on every request: another process (a
    gunicorn worker, the plain-HTTP listener) may have revoked it a moment ago."""

    certificates: CertificateStore
    revocations: RevocationStore

    def __call__(self, serial: int) -> CertificateStatus:
        if self.certificates.get_certificate(serial) is None:
            return CertificateStatus(ocsp.OCSPCertStatus.UNKNOWN)
        revocation = self.revocations.revocation(serial)
        if revocation is None:
            return CertificateStatus(ocsp.OCSPCertStatus.GOOD)
        return CertificateStatus(ocsp.OCSPCertStatus.REVOKED, revocation)


def read_request(der: bytes) -> CertID:
    """The one CertID of a DER OCSPRequest; ``Refused(malformedRequest)`` for anything that is
    not a well-formed request for one certificate."""
    try:
        request = ocsp.load_der_ocsp_request(der)  # strict DER: no trailing bytes, no BER
        extensions = request.extensions
    # NotImplementedError: what cryptography says of a list of zero or several requests
    except (ValueError, NotImplementedError, x509.DuplicateExtension):
        raise Refused(ocsp.OCSPResponseStatus.MALFORMED_REQUEST) from None
    for extension in extensions:
        if extension.critical and not isinstance(extension.value, x509.OCSPNonce):
            raise Refused(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)  # asks what we cannot do
    try:
        algorithm = request.hash_algorithm
    except UnsupportedAlgorithm:
        raise Refused(ocsp.OCSPResponseStatus.UNAUTHORIZED) from None
    if algorithm.name not in ANSWERED_HASHES:
        raise Refused(ocsp.OCSPResponseStatus.UNAUTHORIZED)
    if not 0 < request.serial_number <= MAX_SERIAL:
        raise Refused(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    return CertID(request.serial_number, algorithm, request.issuer_name_hash,
                  request.issuer_key_hash)


class AnswerCache:
    """Signed answers by key, each until its own time; least recently used out first.
    Thread-safe: gthread workers share one per process."""

    def __init__(self, max_entries: int = MAX_CACHED_ANSWERS) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[bytes, datetime]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, now: datetime) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if now >= entry[1]:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: Hashable, answer: bytes, until: datetime) -> None:
        with self._lock:
            self._entries[key] = (answer, until)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class OCSPResponder:
    """Answers for certificates ``issuer`` issued, signed with its ``key``."""

    def __init__(self, *, issuer: x509.Certificate, key: Any,
                 status_of: Callable[[int], CertificateStatus],
                 clock: Callable[[], datetime], validity: timedelta = VALIDITY,
                 refresh_before: timedelta = REFRESH_BEFORE,
                 cache: AnswerCache | None = None) -> None:
        self.issuer = issuer
        self.key = key
        self.status_of = status_of
        self.clock = clock
        self.validity = validity
        self.refresh_before = refresh_before
        self.cache = cache if cache is not None else AnswerCache()
        self._hashes = {name: issuer_hashes(issuer, algorithm)
                        for name, algorithm in ANSWERED_HASHES.items()}
        self._signature_hash = signature_hash(key)

    def respond(self, der: bytes) -> bytes:
        """A DER OCSPResponse for a DER OCSPRequest: an answer, or an error status."""
        try:
            cert_id = read_request(der)
            if (cert_id.issuer_name_hash, cert_id.issuer_key_hash) != \
                    self._hashes[cert_id.algorithm.name]:
                raise Refused(ocsp.OCSPResponseStatus.UNAUTHORIZED)  # another issuer's
        except Refused as refused:
            return error_response(refused.status)
        try:
            status = self.status_of(cert_id.serial)
        except StoreUnavailable:  # logged by the store; RFC 6960 2.3: "try again later"
            return error_response(ocsp.OCSPResponseStatus.TRY_LATER)
        now = self.clock()
        key = (cert_id.serial, cert_id.algorithm.name, status.cache_key)
        answer = self.cache.get(key, now)
        if answer is None:
            this_update = now.replace(microsecond=0)
            answer = self._sign(cert_id, status, this_update)
            self.cache.put(key, answer, this_update + self.validity - self.refresh_before)
        return answer

    def _sign(self, cert_id: CertID, status: CertificateStatus, this_update: datetime) -> bytes:
        revocation = status.revocation
        response = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=cert_id.issuer_name_hash, issuer_key_hash=cert_id.issuer_key_hash,
            serial_number=cert_id.serial, algorithm=cert_id.algorithm,
            cert_status=status.status, this_update=this_update,
            next_update=this_update + self.validity,
            revocation_time=revocation.revoked_at if revocation else None,
            revocation_reason=(REASONS.get(revocation.reason_code) if revocation and  # 7: none
                               revocation.reason_code else None),
        ).responder_id(ocsp.OCSPResponderEncoding.HASH, self.issuer).certificates(
            [self.issuer]).sign(self.key, self._signature_hash)
        return response.public_bytes(serialization.Encoding.DER)


def error_response(status: ocsp.OCSPResponseStatus) -> bytes:
    return _ERRORS[status]


_ERRORS = {status: ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
    serialization.Encoding.DER) for status in ocsp.OCSPResponseStatus
    if status != ocsp.OCSPResponseStatus.SUCCESSFUL}


def issuer_hashes(issuer: x509.Certificate, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
    """(name hash, key hash) that identify ``issuer`` in an OCSP CertID."""
    name = hashes.Hash(algorithm)
    name.update(issuer.subject.public_bytes())
    spki = issuer.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(algorithm)
    digest.update(_subject_public_key_bits(spki))
    return name.finalize(), digest.finalize()


def _subject_public_key_bits(spki: bytes) -> bytes:
    # SubjectPublicKeyInfo ::= SEQUENCE { algorithm, subjectPublicKey BIT STRING }; the key hash
    # covers the BIT STRING's value without its unused-bits byte.
    _, body, _ = _der.read(spki)
    _, _, rest = _der.read(body)
    tag, bits, _ = _der.read(rest)
    if tag != 0x03:
        raise ValueError("SubjectPublicKeyInfo has no BIT STRING")
    return bits[1:]
