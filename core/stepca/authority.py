"""The certificate authority, with no knowledge of HTTP: it decides what may be issued, renewed
and revoked. ``stepca.issuance`` builds the certificates; ``stepca.revocation_lists`` and
``stepca.ocsp_responder`` publish revocations."""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from stepca import __version__
from stepca.config import Config, ConfigError, Problems
from stepca.errors import BadRequest, Forbidden, NotFound, Unauthorized
from stepca.health import HealthCheck
from stepca.issuance import CertificateIssuer
from stepca.jose import JOSEFormatError, Token, parse_unverified
from stepca.key_policy import check_public_key, public_key_of
from stepca.logs import annotate
from stepca.keystore import KeyNotFound
from stepca.names import check_common_name, check_sans
from stepca.ocsp_responder import OCSPResponder, StoredStatus
from stepca.plugins import Plugins, distribution_for
from stepca.provisioner import (Audiences, Claims, Provisioner, ProvisionerContext,
                                token_id_expiry)
from stepca.retention import RetentionPolicy
from stepca.revocation_lists import CRLPublisher
from stepca.store import (
    CertificateStore,
    ProvisionerRef,
    RevocationInfo,
    RevocationStore,
    StoredCRL,
    StoreUnavailable,
)
from stepca.timeutil import parse_duration, utcnow
from stepca.x5c import utc, verify_renew_token
from stepca.x509util import (
    ProvisionerExtension,
    SANs,
    fingerprint,
    load_certificates,
    subject_cn,
)

__all__ = ["Authority", "SignResult"]

log = logging.getLogger("stepca.authority")

MAX_CSR_BYTES = 32 * 1024
MAX_REASON_CHARS = 1024
# step-ca's bounds (ocsp.Unspecified..ocsp.AACompromise), 7 included though RFC 5280 leaves it
# unassigned: it is stored as given and published without a reason (stepca.revocation_lists).
MIN_REASON_CODE, MAX_REASON_CODE = 0, 10
OCSP_VALIDITY = timedelta(hours=1)
DEFAULT_PAGE, MAX_PAGE = 20, 100
StoredCertificate = tuple[x509.Certificate, ProvisionerRef | None]  # the store's record


@dataclass(frozen=True)
class SignResult:
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    """The new certificate followed by the intermediate chain."""


class ProvisionerCollection:
    """Provisioners in ca.json order, found by token, name, or escrowed key id."""

    def __init__(self, provisioners: list[Provisioner]) -> None:
        self._list = provisioners
        self._by_key: dict[str, Provisioner] = {}
        names: set[str] = set()
        problems = Problems()
        for prov in provisioners:
            if prov.name in names:
                problems.add(f"ca.json: provisioner name '{prov.name}' is used twice")
            names.add(prov.name)
            for key in prov.lookup_keys:
                other = self._by_key.setdefault(key, prov)
                if other is not prov:  # a token could only ever reach the first: step-ca's error
                    problems.add(f"ca.json: provisioners '{other.name}' and '{prov.name}' "
                                 f"have the same token identifier '{key}'")
        problems.raise_any()
        self._lookups = list(dict.fromkeys(type(p).token_lookup_key for p in provisioners))
        self._uids = [self._uid(i, p) for i, p in enumerate(provisioners)]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._list)

    def __len__(self) -> int:
        return len(self._list)

    @staticmethod
    def _uid(index: int, prov: Provisioner) -> str:
        digest = hashlib.sha1(prov.id.encode()).digest()
        return (index.to_bytes(4, "big") + digest[4:]).hex()

    def for_token(self, token: Token) -> Provisioner:
        for lookup in self._lookups:
            key = lookup(token)
            if key is not None and key in self._by_key:
                return self._by_key[key]
        raise Unauthorized("invalid token: no provisioner matches its issuer and key id")

    def by_name(self, name: str) -> Provisioner | None:
        return next((p for p in self._list if p.name == name), None)

    def page(self, cursor: str, limit: int) -> tuple[list[Provisioner], str]:
        start_uid = cursor.rjust(40, "0") if cursor else ""
        start = next((i for i, uid in enumerate(self._uids) if uid >= start_uid), len(self._list))
        end = start + limit
        next_cursor = self._uids[end].lstrip("0") if end < len(self._list) else ""
        return self._list[start:end], next_cursor

    def encrypted_key(self, kid: str) -> str | None:
        for prov in self._list:
            key = prov.encrypted_key(kid)
            if key:
                return key
        return None


class Authority:
    """Loads the CA's certificates, signing key, provisioners and stores from ca.json."""

    def __init__(self, config: Config, *, plugins: Plugins, password: bytes | None = None,
                 clock: Callable[[], datetime] = utcnow,
                 stores: tuple[CertificateStore, RevocationStore] | None = None) -> None:
        """``stores``: ones already open to use instead of building them from ``config.db``
        (a reload whose db block did not change). Raises one ``ConfigError`` listing every
        problem found."""
        self._assemble(config, plugins=plugins, password=password, clock=clock, stores=stores)

    @classmethod
    def check(cls, config: Config, *, plugins: Plugins, password: bytes | None = None,
              open_key: bool = True) -> None:
        """What a start checks, without its effects: the database is not opened (its type
        must be installed) and no CRL is built; the key is opened only if ``open_key``. Raises
        one ``ConfigError`` listing every problem found."""
        authority = cls.__new__(cls)
        authority._assemble(config, plugins=plugins, password=password, clock=utcnow,
                            stores=None, check_only=True, open_key=open_key)

    def _assemble(self, config: Config, *, plugins: Plugins, password: bytes | None,
                  clock: Callable[[], datetime],
                  stores: tuple[CertificateStore, RevocationStore] | None,
                  check_only: bool = False, open_key: bool = True) -> None:
        self.config = config
        self.plugins = plugins
        self.clock = clock
        self.started_at = clock()
        problems = Problems()
        self.roots = tuple(problems.attempt(lambda: [
            c for path in config.roots for c in _read_certs(path, "root")]) or ())
        self.federated_roots = tuple(problems.attempt(lambda: [
            c for path in config.federated_roots
            for c in _read_certs(path, "federatedRoots")]) or ())
        self.intermediates = tuple(problems.attempt(lambda: _read_certs(config.crt, "crt")) or ())
        self._by_fingerprint = {fingerprint(c): c for c in self.roots + self.federated_roots}
        if self.intermediates and open_key:
            self.signer = problems.attempt(lambda: self._load_signer(password))
        authority = config.authority
        self.backdate, self.claims = timedelta(minutes=1), Claims()
        try:
            self.backdate = parse_duration(str(authority.get("backdate", "1m")))
            self.claims = Claims().merged(authority.get("claims"))
            if self.backdate < timedelta(0):
                problems.add("ca.json authority: backdate cannot be negative")
        except ValueError as exc:
            problems.add(f"ca.json authority: {exc}")
        self.audiences = Audiences.for_dns_names(config.dns_names)
        self.provisioners = problems.attempt(
            lambda: ProvisionerCollection(self._build_provisioners()))
        self.retention = problems.attempt(lambda: RetentionPolicy.from_db_config(config.db))
        if check_only:
            problems.attempt(lambda: _store_classes(config.db, plugins))
            problems.raise_any()
            return
        problems.raise_any()
        self.issuer = CertificateIssuer(config, intermediates=self.intermediates,
                                        signer=self.signer, backdate=self.backdate, clock=clock)
        self.certificates, self.revocations = stores or self._build_stores()
        self._crl = CRLPublisher(config.crl, issuer=self.intermediates[0], key=self.signer,
                                 revocations=self.revocations, clock=clock)
        if config.crl.enabled:
            # a revocation committed just before a crash may have missed its CRL, the
            # configuration may have changed; and it fails at start-up if the store cannot
            # keep a CRL
            self._crl.at_start()

    # -- start-up ----------------------------------------------------------------------------------

    def _load_signer(self, password: bytes | None) -> Any:
        kms = self.config.kms or {}
        kind = str(kms.get("type") or "softkms").lower()
        stores = self.plugins.key_stores()
        if kind not in stores:
            raise ConfigError(f"ca.json kms.type '{kind}' is not provided by any installed "
                              f"plugin (installed: {', '.join(sorted(stores))})")
        store = stores[kind].from_config(kms, base_dir=self.config.steppath)
        if password is None and self.config.password:
            password = self.config.password.encode()
        try:
            signer = store.load_signer(self.config.key, password=password)
        except KeyNotFound as exc:
            raise ConfigError(f"intermediate key: {exc}") from None
        except ValueError as exc:
            raise ConfigError(f"intermediate key {self.config.key}: {exc}") from None
        issuer_key = self.intermediates[0].public_key()
        if signer.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) != issuer_key.public_bytes(serialization.Encoding.DER,
                                     serialization.PublicFormat.SubjectPublicKeyInfo):
            raise ConfigError("ca.json: 'key' does not belong to the certificate in 'crt'")
        return signer

    def _build_provisioners(self) -> list[Provisioner]:
        types = self.plugins.provisioner_types()
        self._context = context = ProvisionerContext(
            audiences=self.audiences, claims=self.claims, clock=self.clock,
            started_at=self.started_at,
            disable_issued_at_check=bool(self.config.authority.get("disableIssuedAtCheck")))
        built = []
        problems = Problems()
        for entry in self.config.provisioners:
            kind = str(entry.get("type", "")).lower()
            name = entry.get("name", "?")
            if kind not in types:
                problems.add(
                    f"ca.json: provisioner '{name}' has type '{entry.get('type')}', which no "
                    f"installed plugin provides (installed: "
                    f"{', '.join(sorted(t.type for t in types.values())) or 'none'}); "
                    f"install its plugin, e.g. pip install {distribution_for(kind)}")
                continue
            try:
                built.append(types[kind].from_config(entry, context=context))
            except (ValueError, KeyError, TypeError) as exc:  # ConfigError is a ValueError
                for problem in getattr(exc, "problems", None) or [str(exc)]:
                    problems.add(f"ca.json: provisioner '{name}': {problem}")
        problems.raise_any()
        return built

    def _build_stores(self) -> tuple[CertificateStore, RevocationStore]:
        db = self.config.db or {"type": "memory"}
        cert_type, rev_type = _store_classes(db, self.plugins)
        certificates = cert_type.from_config(db, steppath=self.config.steppath)
        if rev_type is cert_type:
            revocations: RevocationStore = certificates  # type: ignore[assignment]
        else:
            revocations = rev_type.from_config(db, steppath=self.config.steppath)
        return certificates, revocations

    def close(self) -> None:
        self.certificates.close()
        if self.revocations is not self.certificates:
            self.revocations.close()

    # -- read-only API -----------------------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        return {"version": __version__}

    def check_health(self) -> None:
        """Raise when the store or the signing key is broken (``stepca.health``)."""
        self._health.run()

    @functools.cached_property
    def _health(self) -> HealthCheck:
        return HealthCheck(certificates=self.certificates, revocations=self.revocations,
                           signer=self.signer, public_key=self.intermediates[0].public_key())

    def root(self, sha: str) -> x509.Certificate:
        wanted = sha.lower().replace("-", "").replace(":", "")
        cert = self._by_fingerprint.get(wanted)
        if cert is None:
            raise NotFound(f'root certificate with fingerprint "{wanted}" was not found')
        return cert

    def federation(self) -> tuple[x509.Certificate, ...]:
        return self.roots + tuple(c for c in self.federated_roots if c not in self.roots)

    def provisioner_page(self, cursor: str = "", limit: str | int | None = None
                         ) -> tuple[list[dict[str, Any]], str]:
        if limit in (None, ""):
            count = DEFAULT_PAGE
        else:
            try:
                count = int(str(limit))
            except ValueError:
                raise BadRequest(f"limit '{limit}' is not an integer") from None
        count = DEFAULT_PAGE if count <= 0 else min(count, MAX_PAGE)
        page, next_cursor = self.provisioners.page(cursor, count)
        return [p.public_json() for p in page], next_cursor

    def encrypted_key(self, kid: str) -> str:
        key = self.provisioners.encrypted_key(kid)
        if key is None:
            raise NotFound(f"provisioner with kid '{kid}' has no encrypted key")
        return key

    # -- issuance ----------------------------------------------------------------------------------

    def sign(self, *, csr_pem: str, ott: str, not_before: str | None = None,
             not_after: str | None = None) -> SignResult:
        """Issue a certificate for a CSR authorized by a one-time token.

        Every check runs before anything is written; the token id is spent in the same
        transaction that records the certificate."""
        csr, public_key = parse_csr(csr_pem)
        token = _parse_token(ott)
        provisioner = self.provisioners.for_token(token)
        annotate(provisioner=provisioner.name)
        # names a provisioner leaves to the CSR are resolved before any check sees them
        options = provisioner.authorize_sign(token).with_names_of(csr)
        subject = options.subject if options.subject is not None else ""
        sans = options.sans if options.sans is not None else SANs()
        _check_certificate_names(subject, sans)
        annotate(subject=subject)  # once well-formed: at most 64 characters, none invisible
        for validate in options.validators:
            validate(csr)
        start, end = self.issuer.validity(options.claims, not_before, not_after)
        reason = self.plugins.hook.stepca_authorize_sign(csr=csr, options=options,
                                                         provisioner=provisioner)
        if reason:
            raise Forbidden(str(reason))
        extension = None if options.claims.disable_smallstep_extensions else options.extension
        extra = [extension.to_extension()] if extension else []
        cert = self.issuer.issue(public_key, subject=subject, sans=sans,
                                 not_before=start, not_after=end, extra=extra)
        ref = ProvisionerRef(id=provisioner.id, name=provisioner.name, type=provisioner.type)
        self.certificates.store_certificate(
            cert, provisioner=ref, token_id=options.token_id,
            token_expires_at=token_id_expiry(token, options.token_id))
        annotate(serial=str(cert.serial_number))
        log.debug("issued certificate serial=%s subject=%s provisioner=%s", cert.serial_number,
                 subject, provisioner.name)
        self.plugins.hook.stepca_after_sign(certificate=cert, provisioner=provisioner)
        return SignResult(cert, (cert, *self.intermediates))

    # -- renewal -----------------------------------------------------------------------------------

    def _provisioner_of(self, certificate: x509.Certificate,
                        stored: StoredCertificate | None) -> Provisioner | None:
        """The provisioner that issued ``certificate``: the store's record (``stored``), else
        its provisioner extension. None when it has neither (step-ca's no-op provisioner: a
        certificate signed offline with the intermediate may renew); ``Unauthorized`` when the
        one named is gone."""
        if stored is not None and stored[1] is not None:
            return self._configured_provisioner(stored[1].name)
        try:
            extension = ProvisionerExtension.from_certificate(certificate)
        except ValueError:
            extension = None
        return self._configured_provisioner(extension.name) if extension else None

    def _configured_provisioner(self, name: str) -> Provisioner:
        provisioner = self.provisioners.by_name(name)
        if provisioner is None:  # removed from ca.json: its certificates must not renew forever
            raise Unauthorized(f"provisioner not found: '{name}' is no longer configured")
        return provisioner

    def _issued_here(self, certificate: x509.Certificate,
                     stored: StoredCertificate | None = None) -> None:
        """``Unauthorized`` unless the intermediate signed ``certificate`` or the store holds
        it as issued here (``stored``, read if not given): after a rotation, the previous
        intermediate's certificates still renew and revoke by mutual TLS (TLS has checked
        their chain to a configured root)."""
        try:
            self.issuer.issued_here(certificate)
        except Unauthorized:
            if stored is None:
                stored = self.certificates.get_certificate(certificate.serial_number)
            if stored is None or stored[0] != certificate:
                raise

    def _authorize_renew(self, certificate: x509.Certificate
                         ) -> tuple[Provisioner | None, StoredCertificate | None]:
        """The provisioner that issued ``certificate`` and the store's record of it."""
        stored = self.certificates.get_certificate(certificate.serial_number)
        self._issued_here(certificate, stored)
        annotate(serial=str(certificate.serial_number), subject=subject_cn(certificate.subject))
        if self.revocations.is_revoked(certificate.serial_number):
            raise Unauthorized("certificate has been revoked")
        provisioner = self._provisioner_of(certificate, stored)
        if provisioner is not None:
            annotate(provisioner=provisioner.name)
        now = self.clock()
        if now < certificate.not_valid_before_utc:
            raise Unauthorized("certificate is not yet valid")
        if provisioner is not None:
            provisioner.authorize_renew(certificate)
        claims = provisioner.claims if provisioner else self.claims
        if now > certificate.not_valid_after_utc and not claims.allow_renewal_after_expiry:
            raise Unauthorized(f"certificate expired on {utc(certificate.not_valid_after_utc)}")
        reason = self.plugins.hook.stepca_authorize_renew(certificate=certificate,
                                                          provisioner=provisioner)
        if reason:
            raise Unauthorized(str(reason))
        return provisioner, stored

    def renew(self, certificate: x509.Certificate, *, token_id: str | None = None,
              token_expires_at: datetime | None = None, public_key: Any = None) -> SignResult:
        """A new certificate with the old one's subject, SANs, extensions and lifetime, a new
        serial and validity starting now; ``public_key`` replaces the key (rekey)."""
        provisioner, stored = self._authorize_renew(certificate)
        rekey = public_key is not None
        if rekey:
            check_public_key(public_key)  # parse_csr checked a rekey's; any caller's is checked
        key = public_key if rekey else public_key_of(certificate, owner="certificate")
        new = self.issuer.reissue(certificate, key, rekey=rekey)
        ref = stored[1] if stored else (ProvisionerRef(provisioner.id, provisioner.name,
                                                       provisioner.type) if provisioner else None)
        # the revocation check again, atomically with the write: a revocation may have
        # returned since _authorize_renew
        self.certificates.store_renewed_certificate(
            new, renewed_from=certificate.serial_number, provisioner=ref, token_id=token_id,
            token_expires_at=token_expires_at)
        annotate(new_serial=str(new.serial_number))
        log.debug("renewed certificate serial=%s as serial=%s", certificate.serial_number,
                 new.serial_number)
        self.plugins.hook.stepca_after_renew(old=certificate, new=new, provisioner=provisioner)
        return SignResult(new, (new, *self.intermediates))

    def renew_with_token(self, raw: str) -> SignResult:
        """Renew the certificate a ``x5cInsecure`` token carries (no mutual TLS needed)."""
        token = _parse_token(raw)
        certificate, token_id = verify_renew_token(
            token, roots=self.roots, audiences=self.audiences, context=self._context,
            provisioner_names=frozenset(p.name for p in self.provisioners))
        return self.renew(certificate, token_id=token_id,
                          token_expires_at=token_id_expiry(token, token_id))

    def rekey(self, certificate: x509.Certificate, csr_pem: str) -> SignResult:
        _, public_key = parse_csr(csr_pem)
        return self.renew(certificate, public_key=public_key)

    # -- revocation --------------------------------------------------------------------------------

    def revoke(self, *, serial: str, reason_code: int = 0, reason: str = "",
               ott: str | None = None, peer: x509.Certificate | None = None) -> None:
        """Revoke by one-time token (whose subject is the decimal serial) or by mutual TLS with
        the certificate itself. Every check runs before the revocation and the token id are
        written, in one transaction."""
        number = _parse_serial(serial)
        annotate(serial=str(number))
        if isinstance(reason_code, bool) or not isinstance(reason_code, int) or \
                not MIN_REASON_CODE <= reason_code <= MAX_REASON_CODE:
            raise BadRequest("reasonCode out of bounds")
        if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
            raise BadRequest(f"reason must be a string of at most {MAX_REASON_CHARS} characters")
        token_id, token_expires_at, provisioner, mtls = None, None, None, False
        if ott:
            token = _parse_token(ott)
            provisioner = self.provisioners.for_token(token)
            annotate(provisioner=provisioner.name)
            token_id = provisioner.authorize_revoke(token)
            token_expires_at = token_id_expiry(token, token_id)
            if token.claims.get("sub") != str(number):
                raise Forbidden(f"request serial number {number} and token subject "
                                f"{token.claims.get('sub')} do not match")
        elif peer is not None:
            self._issued_here(peer)
            if peer.serial_number != number:
                raise Forbidden(f"request serial number {number} and client certificate serial "
                                f"number {peer.serial_number} do not match")
            mtls = True
        else:
            raise BadRequest("missing ott or client certificate")
        stored = self.certificates.get_certificate(number)
        if stored is None:
            raise NotFound(f"certificate with serial number '{number}' was not issued by this "
                           "certificate authority")
        certificate, ref = stored
        annotate(subject=subject_cn(certificate.subject))
        if provisioner is None:
            provisioner = self.provisioners.by_name(ref.name) if ref else None
            if provisioner is not None:
                annotate(provisioner=provisioner.name)
        veto = self.plugins.hook.stepca_authorize_revoke(serial=number, reason_code=reason_code,
                                                         provisioner=provisioner)
        if veto:
            raise Forbidden(str(veto))
        self.revocations.revoke(RevocationInfo(
            serial=number, provisioner_id=provisioner.id if provisioner else "",
            reason_code=reason_code, reason=reason, revoked_at=self.clock().replace(microsecond=0),
            expires_at=certificate.not_valid_after_utc, token_id=token_id, mtls=mtls),
            token_expires_at=token_expires_at)
        log.info("revoked certificate serial=%s reason=%s", number, reason_code)
        self.plugins.hook.stepca_after_revoke(serial=number, reason_code=reason_code,
                                              reason=reason, provisioner=provisioner)
        if self.config.crl.enabled and self.config.crl.generate_on_revoke:
            try:
                self._crl.generate(covering=self.revocations.revocation_mark())
            except StoreUnavailable:  # the revocation stands; its mark makes GET /crl rebuild
                log.warning("revoked serial=%s but could not rebuild the CRL now: the next "
                            "request for it will", number)

    # -- CRL and OCSP ------------------------------------------------------------------------------

    def crl(self) -> StoredCRL:
        """The current CRL (``CRLPublisher.current``)."""
        if not self.config.crl.enabled:
            raise NotFound("the CRL is not enabled on this certificate authority")
        return self._crl.current()

    def ocsp(self, request_der: bytes) -> bytes:
        """An RFC 6960 response (always DER; errors are OCSP statuses, not HTTP ones)."""
        if not self.config.ocsp.enabled:
            raise NotFound("the OCSP responder is not enabled on this certificate authority")
        return self._ocsp_responder.respond(request_der)

    @functools.cached_property
    def _ocsp_responder(self) -> OCSPResponder:
        # built on first use: a CA without OCSP never computes the issuer hashes
        return OCSPResponder(issuer=self.intermediates[0], key=self.signer,
                             status_of=StoredStatus(self.certificates, self.revocations),
                             clock=self.clock, validity=OCSP_VALIDITY)

    def issue_tls_certificate(self) -> tuple[Any, tuple[x509.Certificate, ...]]:
        """A fresh key and certificate for the CA's own HTTPS listener, not stored: step-ca
        does the same at start-up."""
        key, cert = self.issuer.tls_certificate()
        return key, (cert, *self.intermediates)


def _parse_serial(value: str) -> int:
    if not value:
        raise BadRequest("missing serial")  # step-ca's words
    if len(value) > 100:
        raise BadRequest("invalid serial number: longer than 100 characters")
    # Go's big.Int SetString(value, 0), as step-ca reads it: a sign, then 0x, 0o, 0b or a
    # leading 0 (octal) or decimal; ASCII digits, underscores between them; no spaces
    sign, digits = (value[0], value[1:]) if value[0] in "+-" else ("", value)
    if len(digits) > 1 and digits[0] == "0" and digits[1] not in "xXoObB":
        digits = "0o" + digits[1:]
    try:
        if not (value.isascii() and digits[:1].isdigit() and value == value.strip()):
            raise ValueError(value)
        number = int(sign + digits, 0)
    except ValueError:
        raise BadRequest(f"'{value}' is not a valid serial number") from None
    if number <= 0:
        raise BadRequest(f"'{value}' is not a valid serial number")
    return number


def _check_certificate_names(common_name: str, sans: SANs) -> None:
    """What the certificate will carry, whichever provisioner authorized it: a name that is
    not well-formed is the client's 400 (decision 0014)."""
    try:
        check_common_name(common_name)
        check_sans(sans)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def parse_csr(csr_pem: str) -> tuple[x509.CertificateSigningRequest, Any]:
    """The CSR and its public key, loaded once (``key_policy.public_key_of``). The key policy
    runs before the signature check: a refused key costs no verification."""
    if not csr_pem:
        raise BadRequest("missing csr")
    if not isinstance(csr_pem, str) or len(csr_pem) > MAX_CSR_BYTES:
        raise BadRequest("invalid csr: it must be a PEM string of at most 32 KiB")
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except (ValueError, UnicodeEncodeError, TypeError):
        raise BadRequest("invalid csr") from None
    public_key = public_key_of(csr)
    try:
        valid = csr.is_signature_valid
    except (ValueError, TypeError):
        raise BadRequest("invalid csr") from None
    if not valid:
        raise BadRequest("invalid csr: its signature does not verify")
    try:
        csr.extensions  # noqa: B018 - parse now: a malformed extension request is the client's
    except ValueError as exc:
        raise BadRequest(f"invalid csr: its extensions cannot be read: {exc}") from None
    return csr, public_key


def _parse_token(ott: str) -> Token:
    if not ott:
        raise BadRequest("missing ott")
    try:
        return parse_unverified(ott)
    except JOSEFormatError as exc:
        raise Unauthorized(f"invalid token: {exc}") from None


def _store_classes(db: dict[str, Any] | None,
                   plugins: Plugins) -> tuple[type[CertificateStore], type[RevocationStore]]:
    db = db or {"type": "memory"}
    kind = str(db.get("type", "")).lower()
    cert_types = plugins.certificate_stores()
    rev_types = plugins.revocation_stores()
    if kind not in cert_types or kind not in rev_types:
        # sqlite is what `step ca init` writes: its plugin is missing, not the type wrong
        hint = ("install its plugin: pip install stepca-store-sqlite" if kind == "sqlite"
                else "for the embedded store use \"db\": {\"type\": \"sqlite\", "
                "\"dataSource\": \"<STEPPATH>/db/stepca.db\"} with stepca-store-sqlite "
                "installed")
        raise ConfigError(
            f"ca.json db.type '{db.get('type')}' is not provided by any installed plugin "
            f"(installed: {', '.join(sorted(set(cert_types) & set(rev_types)))}); {hint}")
    return cert_types[kind], rev_types[kind]


def _read_certs(path: Any, field: str) -> list[x509.Certificate]:
    try:
        certs = load_certificates(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"ca.json '{field}': {path} does not exist") from None
    except ValueError as exc:
        raise ConfigError(f"ca.json '{field}': {path} holds no certificate: {exc}") from None
    if not certs:
        raise ConfigError(f"ca.json '{field}': {path} holds no certificate")
    return certs
