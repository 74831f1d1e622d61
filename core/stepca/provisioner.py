"""The provisioner interface: how a plugin authorizes certificate requests.

Lifecycle: a plugin's ``stepca_provisioner_types`` hook returns ``Provisioner`` subclasses; the
authority indexes them by ``type`` (the ``type`` of a ca.json provisioner entry, compared
case-insensitively); for each entry it calls ``from_config``; then, per request, it finds the
provisioner a token names (``token_lookup_key`` / ``lookup_keys``) and calls
``authorize_sign``, ``authorize_revoke`` or ``authorize_renew`` on it. Those methods verify the
credential completely and return what the authority needs; they never write anything: the
authority spends the token id only once every check has passed.
"""

from __future__ import annotations

import abc
import functools
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol, Self
from urllib.parse import unquote, urlparse

from cryptography import x509

from stepca.errors import Forbidden, Unauthorized, go_list
from stepca.jose import Token
from stepca.key_policy import MIN_RSA_BITS, public_key_of
from stepca.timeutil import format_duration, parse_duration
from stepca.x509util import ProvisionerExtension, SANs, subject_cn

__all__ = [
    "Audiences",
    "CSRValidator",
    "Claims",
    "CommonNameValidator",
    "KeyValidator",
    "Provisioner",
    "ProvisionerContext",
    "SANsValidator",
    "SignOptions",
    "check_config_keys",
    "check_fragment_audience",
    "check_token_claims",
    "check_token_times",
    "config_duration",
    "config_flag",
    "config_strings",
    "config_text",
    "fragment_lookup_key",
    "token_id_expiry",
    "token_id_of",
]

LEEWAY = timedelta(minutes=1)
MAX_TOKEN_LIFETIME = timedelta(hours=1)
MAX_JTI = 256


@dataclass(frozen=True)
class Claims:
    """Durations and switches of step-ca's ``claims`` (X.509 part)."""

    min_tls_duration: timedelta = timedelta(minutes=5)
    max_tls_duration: timedelta = timedelta(hours=24)
    default_tls_duration: timedelta = timedelta(hours=24)
    disable_renewal: bool = False
    allow_renewal_after_expiry: bool = False
    disable_smallstep_extensions: bool = False

    _FIELDS: ClassVar[Mapping[str, str]] = {
        "minTLSCertDuration": "min_tls_duration",
        "maxTLSCertDuration": "max_tls_duration",
        "defaultTLSCertDuration": "default_tls_duration",
        "disableRenewal": "disable_renewal",
        "allowRenewalAfterExpiry": "allow_renewal_after_expiry",
        "disableSmallstepExtensions": "disable_smallstep_extensions",
    }

    def merged(self, data: Mapping[str, Any] | None) -> Claims:
        """These claims overridden by a ca.json ``claims`` object; ``ValueError`` if invalid."""
        if not data:
            return self
        changes: dict[str, Any] = {}
        for key, attr in self._FIELDS.items():
            if data.get(key) is None:
                continue
            value = data[key]
            if attr.endswith("duration"):
                changes[attr] = parse_duration(str(value))
            elif isinstance(value, bool):
                changes[attr] = value
            else:
                raise ValueError(f"claim {key} must be a boolean")
        merged = replace(self, **changes)
        # step-ca: a default outside the inherited bounds widens them.
        if "default_tls_duration" in changes:
            if "min_tls_duration" not in changes and merged.default_tls_duration < merged.min_tls_duration:
                merged = replace(merged, min_tls_duration=merged.default_tls_duration)
            if "max_tls_duration" not in changes and merged.default_tls_duration > merged.max_tls_duration:
                merged = replace(merged, max_tls_duration=merged.default_tls_duration)
        merged.validate()
        return merged

    def validate(self) -> None:
        if min(self.min_tls_duration, self.max_tls_duration, self.default_tls_duration) <= timedelta(0):
            raise ValueError("claims: TLS certificate durations must be greater than 0")
        if self.max_tls_duration < self.min_tls_duration:
            raise ValueError("claims: maxTLSCertDuration cannot be less than minTLSCertDuration")
        if not self.min_tls_duration <= self.default_tls_duration <= self.max_tls_duration:
            raise ValueError("claims: defaultTLSCertDuration must be between "
                             "minTLSCertDuration and maxTLSCertDuration")


@dataclass(frozen=True)
class Audiences:
    """The ``aud`` values the CA accepts per request kind, compared without ports."""

    sign: frozenset[str]
    revoke: frozenset[str]
    renew: frozenset[str]

    @classmethod
    def for_dns_names(cls, dns_names: Iterable[str]) -> Audiences:
        sign, revoke, renew = {"step-certificate-authority"}, {"step-certificate-authority"}, set()
        for name in dns_names:
            host = f"[{name}]" if ":" in name and not name.startswith("[") else name
            for prefix in (f"https://{host}/1.0", f"https://{host}"):
                sign.update({f"{prefix}/sign", f"{prefix}/ssh/sign"})
                revoke.add(f"{prefix}/revoke")
                renew.add(f"{prefix}/renew")
        return cls(frozenset(sign), frozenset(revoke), frozenset(renew))

    @staticmethod
    @functools.lru_cache(maxsize=256)  # clients send the same few audiences again and again
    def normalize(aud: str) -> str:
        """Drop the port so ``https://ca:9000/1.0/sign`` matches ``https://ca/1.0/sign``."""
        parsed = urlparse(aud)
        if not parsed.scheme or not parsed.netloc:
            return aud
        host = parsed.hostname or ""
        host = f"[{host}]" if ":" in host else host
        return f"{parsed.scheme}://{host}{parsed.path}"

    def accepts(self, kind: str, aud: Any) -> bool:
        allowed: frozenset[str] = getattr(self, kind)
        values = aud if isinstance(aud, list) else [aud]
        return any(isinstance(v, str) and self.normalize(v) in allowed for v in values)


@dataclass(frozen=True)
class ProvisionerContext:
    """What the authority hands every provisioner it builds."""

    audiences: Audiences
    claims: Claims
    clock: Callable[[], datetime]
    started_at: datetime
    disable_issued_at_check: bool = False


class CSRValidator(Protocol):
    """Checks a CSR against what a token authorized; raises ``Forbidden`` or ``BadRequest``."""

    def __call__(self, csr: x509.CertificateSigningRequest) -> None: ...


@dataclass(frozen=True)
class CommonNameValidator:
    """The CSR's CN must be empty or one of the authorized names."""

    allowed: tuple[str, ...]

    def __call__(self, csr: x509.CertificateSigningRequest) -> None:
        cn = subject_cn(csr.subject)
        if cn and cn not in self.allowed:
            raise Forbidden(f"certificate request does not contain the valid common name - "
                            f"got {cn}, want {go_list(self.allowed)}")


@dataclass(frozen=True)
class SANsValidator:
    """For each SAN type the CSR uses, its set must equal the authorized set of that type."""

    authorized: SANs

    def __call__(self, csr: x509.CertificateSigningRequest) -> None:
        requested = SANs.of_csr(csr)
        for label, got, want in (  # step-ca's order of checks
            ("DNS names", requested.dns, self.authorized.dns),
            ("email addresses", requested.emails, self.authorized.emails),
            ("IP addresses", requested.ips, self.authorized.ips),
            ("URIs", requested.uris, self.authorized.uris),
        ):
            if got and set(got) != set(want):
                raise Forbidden(f"certificate request does not contain the valid {label} - "
                                f"got {go_list(got)}, want {go_list(want)}")


@dataclass(frozen=True)
class KeyValidator:
    """The CA's key policy (``stepca.key_policy``) applied to a CSR's key.

    The authority applies that policy to every key it certifies, whatever the provisioner, so
    a provisioner lists this validator only to demand more: ``KeyValidator(min_rsa_bits=3072)``.
    It loads the key again (~10 µs for EC), so leave it out otherwise."""

    min_rsa_bits: int = MIN_RSA_BITS

    def __call__(self, csr: x509.CertificateSigningRequest) -> None:
        public_key_of(csr, min_rsa_bits=self.min_rsa_bits)


@dataclass(frozen=True)
class SignOptions:
    """What a provisioner authorized for one ``/sign`` request."""

    token_id: str | None
    """The id to spend when the certificate is issued (``jti``, else the token's hash); None
    spends nothing, so the token may be used again (step-ca's Azure without trust on first
    use: Azure hands out the same token for a day)."""
    subject: str | None
    """The certificate's common name; None for the CSR's (a cloud identity vouches for an
    instance, not for names: its validators say which the CSR may ask for)."""
    sans: SANs | None
    """The certificate's subject alternative names; None for the CSR's."""
    claims: Claims
    extension: ProvisionerExtension | None
    validators: tuple[CSRValidator, ...] = field(default_factory=tuple)

    def with_names_of(self, csr: x509.CertificateSigningRequest) -> SignOptions:
        """These options with the CSR's common name and SANs where they leave them to it."""
        if self.subject is not None and self.sans is not None:
            return self
        return replace(self, subject=subject_cn(csr.subject) if self.subject is None
                       else self.subject,
                       sans=SANs.of_csr(csr) if self.sans is None else self.sans)


# -- reading a provisioner's ca.json entry: each error names the key ---------------------------------

def check_config_keys(config: Mapping[str, Any], known: Iterable[str]) -> None:
    """``ValueError`` for ``options`` (certificate templates are not supported) and for any key
    not ``known``: a misspelt restriction must not be silently lifted."""
    if config.get("options") is not None:
        raise ValueError("'options' (certificate templates) are not supported")
    unknown = sorted(set(config) - set(known) - {"type", "name", "claims", "options"})
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}")


def config_strings(config: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = config.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"'{key}' must be a list of non-empty strings")
    return tuple(value)


def config_flag(config: Mapping[str, Any], key: str) -> bool:
    value = config.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"'{key}' must be true or false")
    return value


def config_text(config: Mapping[str, Any], key: str, default: str | None = None) -> str:
    """A non-empty string; ``default`` when absent or empty, required when there is none."""
    value = config.get(key) or default
    if not isinstance(value, str) or not value:
        raise ValueError(f"'{key}' is required" if value is None
                         else f"'{key}' must be a non-empty string")
    return value


def config_duration(config: Mapping[str, Any], key: str) -> timedelta | None:
    """A non-negative duration (``1h30m``), or None when absent or empty."""
    value = config.get(key)
    if value in (None, ""):
        return None
    try:
        duration = parse_duration(str(value))
    except ValueError as exc:
        raise ValueError(f"'{key}': {exc}") from None
    if duration < timedelta(0):
        raise ValueError(f"'{key}' cannot be negative")
    return duration


def fragment_lookup_key(token: Token, kind: str) -> str | None:
    """step-ca's provisioner lookup for AWS and GCP identities: the first audience is the sign
    URL with ``<kind>/<name>`` in its fragment (escaped as Go escapes it, as step sends it)."""
    aud = token.claims.get("aud")
    first = aud[0] if isinstance(aud, list) and aud else aud
    if not isinstance(first, str) or "#" not in first:
        return None
    fragment = unquote(first.partition("#")[2])
    return fragment if fragment.startswith(f"{kind}/") else None


def check_fragment_audience(token: Token, audiences: Audiences, fragment: str) -> None:
    """Unauthorized unless an audience is one of the CA's sign URLs with ``#<fragment>``."""
    aud = token.claims.get("aud")
    for value in aud if isinstance(aud, list) else [aud]:
        if isinstance(value, str):
            base, _, given = value.partition("#")
            if unquote(given) == fragment and audiences.accepts("sign", base):
                return
    raise Unauthorized("invalid token: wrong audience")


def check_token_claims(token: Token, *, issuer: str | frozenset[str], audiences: Audiences,
                       kind: str, context: ProvisionerContext) -> None:
    """Time, issuer and audience checks shared by token provisioners, stricter than step-ca:
    ``exp`` is required and a token may live at most one hour. Raises ``Unauthorized``."""
    claims = token.claims
    issuers = {issuer} if isinstance(issuer, str) else issuer
    if not isinstance(claims.get("iss"), str) or claims["iss"] not in issuers:
        raise Unauthorized("invalid token: wrong issuer")
    if not audiences.accepts(kind, claims.get("aud")):
        raise Unauthorized("invalid token: wrong audience")
    check_token_times(claims, context)
    if not claims.get("sub") or not isinstance(claims.get("sub"), str):
        raise Unauthorized("invalid token: subject is required")


def check_token_times(claims: Mapping[str, Any], context: ProvisionerContext) -> None:
    """``check_token_claims``'s time checks, for tokens whose issuer and audience are not the
    CA's (an OpenID provider's ID token): ``exp`` required, ``nbf``/``iat`` not in the future
    (one minute of leeway), a life of at most one hour, not issued before the CA started
    (unless ``disableIssuedAtCheck``). Raises ``Unauthorized``."""
    now_ts = context.clock().timestamp()
    leeway = LEEWAY.total_seconds()
    exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
    for label, value in (("exp", exp), ("nbf", nbf), ("iat", iat)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise Unauthorized(f"invalid token: {label} is not a number")
    if exp is None:
        raise Unauthorized("invalid token: exp is required")
    if now_ts - leeway > exp:
        raise Unauthorized("invalid token: token has expired")
    if nbf is not None and now_ts + leeway < nbf:
        raise Unauthorized("invalid token: token is not yet valid")
    if iat is not None and now_ts + leeway < iat:
        raise Unauthorized("invalid token: token was issued in the future")
    start = nbf if nbf is not None else (iat if iat is not None else now_ts)
    if exp - start > MAX_TOKEN_LIFETIME.total_seconds() + leeway:
        raise Unauthorized(f"invalid token: a token may be valid for at most "
                           f"{format_duration(MAX_TOKEN_LIFETIME)}")
    if (iat is not None and not context.disable_issued_at_check
            and iat < context.started_at.timestamp() - leeway):
        raise Unauthorized("token issued before the bootstrap of certificate authority")


def token_id_of(token: Token) -> str:
    """The id the authority spends for ``token``: its ``jti``, else the SHA-256 (hex) of its
    signing input (protected header and payload). Raises ``Unauthorized`` for a ``jti`` that is
    not a string of 1 to 256 characters.

    Never a hash of the whole token: an ECDSA signature (r, s) has a twin (r, n - s) that
    verifies as well, so anyone who saw a token could make a second one with another hash."""
    jti = token.claims.get("jti")
    if jti is None:
        return hashlib.sha256(token.signing_input.encode()).hexdigest()
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI:
        raise Unauthorized("invalid token: jti must be a non-empty string")
    return jti


def token_id_expiry(token: Token, token_id: str | None) -> datetime | None:
    """When the spent ``token_id`` may be forgotten: once ``token`` is refused for its age
    (its ``exp`` plus the leeway), if the id is the token's own (``token_id_of``), since a
    replay of an expired token is refused anyway. None, kept for ever, for an id a
    provisioner derived from something that outlives the token (one instance identity under
    trust on first use: AWS, GCP, Azure), or for a token without a usable ``exp``."""
    if token_id is None:
        return None
    try:
        if token_id != token_id_of(token):
            return None
        exp = token.claims.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, (int, float)):
            return None
        return datetime.fromtimestamp(exp, UTC) + LEEWAY
    except (Unauthorized, ValueError, OverflowError, OSError):
        return None


class Provisioner(abc.ABC):
    """A way to authorize certificate requests (JWK, OIDC, cloud identity, ...)."""

    type: ClassVar[str]
    """The ca.json ``type`` this class handles, e.g. ``"JWK"`` (matched case-insensitively)."""
    type_id: ClassVar[int] = 0
    """The type number written into the provisioner extension (1 JWK, 2 OIDC, ...)."""

    def __init__(self, config: Mapping[str, Any], *, context: ProvisionerContext) -> None:
        name = config.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"provisioner of type {self.type} needs a name")
        self.name: str = name
        self.config: dict[str, Any] = dict(config)
        self.context = context
        self.claims: Claims = context.claims.merged(config.get("claims"))

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, context: ProvisionerContext) -> Self:
        """Build the provisioner from its ca.json entry; raise ``ValueError`` if it is invalid."""
        return cls(config, context=context)

    @staticmethod
    @abc.abstractmethod
    def token_lookup_key(token: Token) -> str | None:
        """The key under which a token of this type finds its provisioner (JWK: ``iss:kid``),
        or None if the token cannot be one of this type."""

    @property
    @abc.abstractmethod
    def lookup_keys(self) -> tuple[str, ...]:
        """The keys ``token_lookup_key`` produces for tokens of this provisioner."""

    @property
    def id(self) -> str:
        """A stable identifier (step-ca: ``name:kid`` for JWK)."""
        return self.lookup_keys[0] if self.lookup_keys else self.name

    @abc.abstractmethod
    def authorize_sign(self, token: Token) -> SignOptions:
        """Verify a ``/sign`` token completely; raise ``Unauthorized`` (or ``Forbidden``)."""

    def authorize_revoke(self, token: Token) -> str:
        """Verify a ``/revoke`` token and return its id to spend. Default: not supported."""
        raise Unauthorized(f"provisioner {self.name!r} does not support revocation tokens")

    def authorize_renew(self, certificate: x509.Certificate) -> None:
        """May ``certificate``, issued through this provisioner, be renewed?"""
        if self.claims.disable_renewal:
            raise Unauthorized(f"renew is disabled for provisioner '{self.name}'")

    def encrypted_key(self, kid: str) -> str | None:
        """The escrowed private key (a JWE) for ``kid``, if this provisioner has one."""
        return None

    def public_json(self) -> dict[str, Any]:
        """The provisioner as ``GET /provisioners`` lists it (its ca.json entry by default)."""
        return dict(self.config)
