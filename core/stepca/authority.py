"""The certificate authority: issuance and lookups, with no knowledge of HTTP."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from stepca import __version__
from stepca.config import Config, ConfigError
from stepca.errors import BadRequest, Forbidden, NotFound, Unauthorized
from stepca.jose import JOSEFormatError, Token, parse_unverified
from stepca.keystore import KeyNotFound
from stepca.plugins import Plugins
from stepca.provisioner import Audiences, Claims, Provisioner, ProvisionerContext
from stepca.store import CertificateStore, ProvisionerRef, RevocationStore
from stepca.timeutil import format_duration, parse_duration, parse_time_or_duration, utcnow
from stepca.x509util import (SERVER_CLIENT_EKU, SANs, fingerprint, generate_key,
                             leaf_key_usage, load_certificates, signature_hash, split_sans)

__all__ = ["Authority", "SignResult"]

log = logging.getLogger("stepca.authority")

MAX_CSR_BYTES = 32 * 1024
DEFAULT_PAGE, MAX_PAGE = 20, 100
TLS_CERT_LIFETIME = timedelta(hours=24)
_TEMPLATE_DN = {
    "country": NameOID.COUNTRY_NAME,
    "organization": NameOID.ORGANIZATION_NAME,
    "organizationalUnit": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "locality": NameOID.LOCALITY_NAME,
    "province": NameOID.STATE_OR_PROVINCE_NAME,
    "streetAddress": NameOID.STREET_ADDRESS,
    "serialNumber": NameOID.SERIAL_NUMBER,
}


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
        for prov in provisioners:
            if prov.name in names:
                raise ConfigError(f"ca.json: provisioner name '{prov.name}' is used twice")
            names.add(prov.name)
            for key in prov.lookup_keys:
                self._by_key[key] = prov
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
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.config = config
        self.plugins = plugins
        self.clock = clock
        self.started_at = clock()
        self.roots = tuple(c for path in config.roots for c in _read_certs(path, "root"))
        self.federated_roots = tuple(c for path in config.federated_roots
                                     for c in _read_certs(path, "federatedRoots"))
        self.intermediates = tuple(_read_certs(config.crt, "crt"))
        self._by_fingerprint = {fingerprint(c): c for c in self.roots + self.federated_roots}
        self.signer = self._load_signer(password)
        authority = config.authority
        try:
            self.backdate = parse_duration(str(authority.get("backdate", "1m")))
            self.claims = Claims().merged(authority.get("claims"))
        except ValueError as exc:
            raise ConfigError(f"ca.json authority: {exc}") from None
        if self.backdate < timedelta(0):
            raise ConfigError("ca.json authority: backdate cannot be negative")
        self.audiences = Audiences.for_dns_names(config.dns_names)
        self.provisioners = ProvisionerCollection(self._build_provisioners())
        self.certificates, self.revocations = self._build_stores()

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
        context = ProvisionerContext(
            audiences=self.audiences, claims=self.claims, clock=self.clock,
            started_at=self.started_at,
            disable_issued_at_check=bool(self.config.authority.get("disableIssuedAtCheck")))
        built = []
        for entry in self.config.provisioners:
            kind = str(entry.get("type", "")).lower()
            name = entry.get("name", "?")
            if kind not in types:
                raise ConfigError(
                    f"ca.json: provisioner '{name}' has type '{entry.get('type')}', which no "
                    f"installed plugin provides (installed: "
                    f"{', '.join(sorted(t.type for t in types.values())) or 'none'}); "
                    f"install its plugin, e.g. pip install stepca-{kind}")
            try:
                built.append(types[kind].from_config(entry, context=context))
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"ca.json: provisioner '{name}': {exc}") from None
        return built

    def _build_stores(self) -> tuple[CertificateStore, RevocationStore]:
        db = self.config.db or {"type": "memory"}
        kind = str(db.get("type", "")).lower()
        cert_types = self.plugins.certificate_stores()
        rev_types = self.plugins.revocation_stores()
        if kind not in cert_types or kind not in rev_types:
            raise ConfigError(
                f"ca.json db.type '{db.get('type')}' is not provided by any installed plugin "
                f"(installed: {', '.join(sorted(set(cert_types) & set(rev_types)))}); for the "
                "embedded store use \"db\": {\"type\": \"sqlite\", \"dataSource\": "
                "\"<STEPPATH>/db/stepca.db\"} with stepca-store-sqlite installed")
        certificates = cert_types[kind].from_config(db, steppath=self.config.steppath)
        if rev_types[kind] is cert_types[kind]:
            revocations: RevocationStore = certificates  # type: ignore[assignment]
        else:
            revocations = rev_types[kind].from_config(db, steppath=self.config.steppath)
        return certificates, revocations

    def close(self) -> None:
        self.certificates.close()
        if self.revocations is not self.certificates:
            self.revocations.close()

    # -- read-only API -----------------------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        return {"version": __version__}

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
        csr = parse_csr(csr_pem)
        token = _parse_token(ott)
        provisioner = self.provisioners.for_token(token)
        options = provisioner.authorize_sign(token)
        for validate in options.validators:
            validate(csr)
        start, end = self._validity(options.claims, not_before, not_after)
        reason = self.plugins.hook.stepca_authorize_sign(csr=csr, options=options,
                                                         provisioner=provisioner)
        if reason:
            raise Forbidden(str(reason))
        extension = None if options.claims.disable_smallstep_extensions else options.extension
        cert = self._issue(csr.public_key(), subject=options.subject, sans=options.sans,
                           not_before=start, not_after=end,
                           extra=[extension.to_extension()] if extension else [])
        ref = ProvisionerRef(id=provisioner.id, name=provisioner.name, type=provisioner.type)
        self.certificates.store_certificate(cert, provisioner=ref, token_id=options.token_id)
        log.info("issued certificate serial=%s subject=%s provisioner=%s", cert.serial_number,
                 options.subject, provisioner.name)
        self.plugins.hook.stepca_after_sign(certificate=cert, provisioner=provisioner)
        return SignResult(cert, (cert, *self.intermediates))

    def _validity(self, claims: Claims, not_before: str | None,
                  not_after: str | None) -> tuple[datetime, datetime]:
        now = self.clock().replace(microsecond=0)
        try:
            start = parse_time_or_duration(not_before, relative_to=now) if not_before else now
            end = (parse_time_or_duration(not_after, relative_to=start) if not_after
                   else start + claims.default_tls_duration)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        if not not_before:
            start -= self.backdate
        start, end = start.replace(microsecond=0), end.replace(microsecond=0)
        if end < now:
            raise BadRequest("notAfter cannot be in the past")
        if end < start:
            raise BadRequest("notAfter cannot be before notBefore")
        duration = end - start
        if duration < claims.min_tls_duration:
            raise Forbidden(f"requested duration of {format_duration(duration)} is less than "
                            f"the authorized minimum certificate duration of "
                            f"{format_duration(claims.min_tls_duration)}")
        if duration > claims.max_tls_duration + self.backdate:
            raise Forbidden(f"requested duration of {format_duration(duration)} is more than "
                            f"the authorized maximum certificate duration of "
                            f"{format_duration(claims.max_tls_duration + self.backdate)}")
        return start, end

    def _subject(self, common_name: str) -> x509.Name:
        attributes = []
        template: Mapping[str, Any] = self.config.authority.get("template") or {}
        for key, oid in _TEMPLATE_DN.items():
            values = template.get(key)
            for value in [values] if isinstance(values, str) else values or []:
                attributes.append(x509.NameAttribute(oid, str(value)))
        cn = common_name or template.get("commonName") or ""
        if cn:
            attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
        return x509.Name(attributes)

    def _issue(self, public_key: Any, *, subject: str, sans: SANs, not_before: datetime,
               not_after: datetime, extra: list[x509.ExtensionType]) -> x509.Certificate:
        issuer = self.intermediates[0]
        try:
            aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value)
        except x509.ExtensionNotFound:
            aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())
        serial = 0
        while not serial:
            serial = secrets.randbits(128)
        builder = (x509.CertificateBuilder()
                   .subject_name(self._subject(subject))
                   .issuer_name(issuer.subject)
                   .public_key(public_key)
                   .serial_number(serial)
                   .not_valid_before(not_before)
                   .not_valid_after(not_after)
                   .add_extension(leaf_key_usage(public_key), critical=True)
                   .add_extension(SERVER_CLIENT_EKU, critical=False)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                                  critical=False)
                   .add_extension(aki, critical=False))
        names = sans.general_names()
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names),
                                            critical=not subject)
        for extension in extra:
            builder = builder.add_extension(extension, critical=False)
        try:
            return builder.sign(self.signer, signature_hash(self.signer))
        except ValueError as exc:
            raise BadRequest(f"cannot issue this certificate: {exc}") from None

    def issue_tls_certificate(self) -> tuple[Any, tuple[x509.Certificate, ...]]:
        """A fresh key and certificate for the CA's own HTTPS listener (CN = ``commonName``,
        SANs = ``dnsNames``, 24 hours), not stored: step-ca does the same at start-up."""
        key = generate_key("EC")
        now = self.clock().replace(microsecond=0)
        cert = self._issue(key.public_key(), subject=self.config.common_name,
                           sans=split_sans(self.config.dns_names),
                           not_before=now - self.backdate, not_after=now + TLS_CERT_LIFETIME,
                           extra=[])
        return key, (cert, *self.intermediates)


def parse_csr(csr_pem: str) -> x509.CertificateSigningRequest:
    if not csr_pem:
        raise BadRequest("missing csr")
    if not isinstance(csr_pem, str) or len(csr_pem) > MAX_CSR_BYTES:
        raise BadRequest("invalid csr: it must be a PEM string of at most 32 KiB")
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        valid = csr.is_signature_valid
    except (ValueError, UnicodeEncodeError, TypeError):
        raise BadRequest("invalid csr") from None
    if not valid:
        raise BadRequest("invalid csr: its signature does not verify")
    return csr


def _parse_token(ott: str) -> Token:
    if not ott:
        raise BadRequest("missing ott")
    try:
        return parse_unverified(ott)
    except JOSEFormatError as exc:
        raise Unauthorized(f"invalid token: {exc}") from None


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
