"""The OIDC provisioner: a person signs in with their OpenID provider and the ID token it issues
is the one-time token for a certificate of their own identity, as step-ca's.

Stricter than step-ca: the email is used (for ``domains``, ``admins`` and the certificate) only
when the provider says it is verified (``email_verified`` true), and a non-admin's certificate
names that email (common name and SAN) and the ``<iss>#<sub>`` URI whatever the CSR asks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from stepca.errors import Unauthorized
from stepca.jose import SignatureError, Token, VerifyingKey
from stepca.provisioner import (
    MAX_JTI,
    Provisioner,
    ProvisionerContext,
    SignOptions,
    check_config_keys,
    check_token_times,
    config_strings,
    config_text,
    token_id_of,
)
from stepca.remote_keys import NotReady, OpenIDProviderKeys
from stepca.x509util import SANs, ProvisionerExtension

__all__ = ["Identity", "OIDCProvisioner", "discovery_url", "issuer_uri"]

WELL_KNOWN = "/.well-known/openid-configuration"
# an ID token is signed with the provider's key pair: never none, never a shared secret (HMAC)
ASYMMETRIC_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                             "ES256", "ES384", "ES512", "EdDSA"})
# what Go's net/url leaves unescaped in a fragment, so iss#sub is written as step-ca writes it
_FRAGMENT_SAFE = "$&+,/:;=?@!()*"
# step-ca's check, Go's net.SplitHostPort: host (IPv6 in brackets) and port, either may be empty
LISTEN_ADDRESS = re.compile(r"(?:\[[^\[\]]*\]|[^:\[\]]*):[^:\[\]]*")
_KNOWN_KEYS = frozenset({"clientID", "clientSecret", "configurationEndpoint", "tenantID",
                         "admins", "domains", "groups", "listenAddress", "scopes",
                         "authParams"})


def discovery_url(configuration_endpoint: str) -> str:
    """The discovery document's URL: the endpoint, with ``/.well-known/openid-configuration``
    appended to its path when it does not have it, as step-ca's."""
    url = urlsplit(configuration_endpoint)
    if WELL_KNOWN in url.path:
        return configuration_endpoint
    return url._replace(path=url.path.rstrip("/") + WELL_KNOWN).geturl()


def issuer_uri(issuer: str, subject: str) -> str | None:
    """``<iss>#<sub>``, the URI SAN that names the person at their provider (None when the
    issuer is not a URL with a scheme, as step-ca's)."""
    url = urlsplit(issuer)
    if not url.scheme:
        return None
    return url._replace(fragment=quote(subject, safe=_FRAGMENT_SAFE)).geturl()


def _sanitized(email: str) -> str:
    """An email with its domain in lower case (local parts may be case-sensitive)."""
    local, at, domain = email.rpartition("@")
    return f"{local}{at}{domain.lower()}" if at else email


@dataclass(frozen=True)
class Identity:
    """What a verified ID token says about the person."""

    issuer: str
    subject: str
    email: str | None
    """The email, only when the provider says it is verified."""
    groups: tuple[str, ...]
    admin: bool


class OIDCProvisioner(Provisioner):
    type = "OIDC"
    type_id = 2

    def __init__(self, config: Mapping[str, Any], *, context: ProvisionerContext) -> None:
        super().__init__(config, context=context)
        check_config_keys(config, _KNOWN_KEYS)
        self.client_id = config_text(config, "clientID")
        secret = config.get("clientSecret", "")
        if not isinstance(secret, str):  # step-ca's: present, and may be empty
            raise ValueError("'clientSecret' must be a string")
        endpoint = config_text(config, "configurationEndpoint")
        self.tenant_id = (config_text(config, "tenantID")
                          if config.get("tenantID") not in (None, "") else None)
        # one list for both, as step-ca's: emails (domain without case) and group names
        self.admins = frozenset(config_strings(config, "admins"))
        self._admin_emails = frozenset(_sanitized(a) for a in self.admins)
        self.domains = frozenset(d.lower() for d in config_strings(config, "domains"))
        self.groups = frozenset(config_strings(config, "groups"))
        config_strings(config, "scopes")  # step's client reads them; checked here all the same
        for param in config_strings(config, "authParams"):
            if "=" not in param:
                raise ValueError(f"'authParams': '{param[:64]}' is not key=value")
        listen = config.get("listenAddress")
        if listen not in (None, "") and (not isinstance(listen, str)
                                         or not LISTEN_ADDRESS.fullmatch(listen)):
            raise ValueError("'listenAddress' must be host:port")
        self._extension = ProvisionerExtension(self.type_id, self.name, self.client_id)
        self.provider = OpenIDProviderKeys(discovery_url(endpoint),
                                           name=f"provisioner '{self.name}'")
        self.provider.start()

    @staticmethod
    def token_lookup_key(token: Token) -> str | None:
        # step-ca's: the authorized party (azp), else the first audience: the client id
        azp = token.claims.get("azp")
        if isinstance(azp, str) and azp:
            return azp
        aud = token.claims.get("aud")
        first = aud[0] if isinstance(aud, list) and aud else aud
        return first if isinstance(first, str) and first else None

    @property
    def lookup_keys(self) -> tuple[str, ...]:
        return (self.client_id,)

    # -- checks ----------------------------------------------------------------------------------

    def _signature(self, token: Token) -> str:
        """Checks the signature with the provider's key named by ``kid``; returns the issuer
        the provider's tokens carry."""
        kid = token.header.get("kid")
        if token.alg not in ASYMMETRIC_ALGS:
            raise Unauthorized(f"invalid token: alg {token.alg[:16] or 'none'} is not an "
                               "asymmetric signature algorithm")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("invalid token: an ID token names its key (kid)")
        try:
            key = self.provider.key(kid)
            issuer = self.provider.issuer
        except NotReady as exc:
            raise Unauthorized(f"the OpenID provider's keys are not available yet: "
                               f"{exc}") from None
        except KeyError:
            raise Unauthorized(f"invalid token: no key '{kid[:64]}' in the OpenID provider's "
                               "keys") from None
        try:
            VerifyingKey(key, token.alg).verify(token)
        except SignatureError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        if self.tenant_id is not None:
            issuer = issuer.replace("{tenantid}", self.tenant_id)
        return issuer

    def _check_claims(self, claims: Mapping[str, Any], issuer: str) -> None:
        if claims.get("iss") != issuer:
            raise Unauthorized("invalid token: wrong issuer")
        aud = claims.get("aud")
        if self.client_id not in (aud if isinstance(aud, list) else [aud]):
            raise Unauthorized("invalid token: wrong audience: not for this client id")
        azp = claims.get("azp")
        if azp is not None and azp != self.client_id:
            raise Unauthorized("invalid token: invalid azp: not this client id")
        check_token_times(claims, self.context)
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise Unauthorized("invalid token: subject is required")

    def _identity(self, claims: Mapping[str, Any], issuer: str) -> Identity:
        email = claims.get("email")
        if not isinstance(email, str) or not email or claims.get("email_verified") is not True:
            email = None
        groups = claims.get("groups", [])
        if groups is None:
            groups = []
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise Unauthorized("invalid token: groups must be a list of strings")
        admin = (email is not None and _sanitized(email) in self._admin_emails) or any(
            g in self.admins for g in groups)
        return Identity(issuer=issuer, subject=claims["sub"], email=email,
                        groups=tuple(groups), admin=admin)

    def _allowed(self, identity: Identity, claims: Mapping[str, Any]) -> None:
        if self.domains and not identity.admin:
            email = self._verified_email(identity, claims)
            if email.rpartition("@")[2].lower() not in self.domains:
                raise Unauthorized("invalid token: email is not allowed: its domain is not "
                                   "one of the provisioner's domains")
        if self.groups and self.groups.isdisjoint(identity.groups):
            raise Unauthorized("invalid token: invalid group: none of the provisioner's groups")

    @staticmethod
    def _verified_email(identity: Identity, claims: Mapping[str, Any]) -> str:
        if identity.email is not None:
            return identity.email
        if isinstance(claims.get("email"), str) and claims["email"]:
            raise Unauthorized("invalid token: the email is not verified (email_verified is "
                               "not true)")
        raise Unauthorized("invalid token: the token has no email")

    def _authorize(self, token: Token) -> tuple[Identity, str]:
        """Every check of an ID token, the signature first; its identity and id to spend."""
        issuer = self._signature(token)
        claims = token.claims
        self._check_claims(claims, issuer)
        identity = self._identity(claims, issuer)
        self._allowed(identity, claims)
        return identity, self._token_id(token)

    @staticmethod
    def _token_id(token: Token) -> str:
        # step-ca's: the nonce the client chose for this sign-in, else the token's own id
        nonce = token.claims.get("nonce")
        if nonce is None or nonce == "":
            return token_id_of(token)
        if not isinstance(nonce, str) or len(nonce) > MAX_JTI:
            raise Unauthorized(f"invalid token: nonce must be a string of at most {MAX_JTI} "
                               "characters")
        return nonce

    # -- what the authority calls -----------------------------------------------------------------

    def authorize_sign(self, token: Token) -> SignOptions:
        identity, token_id = self._authorize(token)
        if identity.admin:
            # admins may request any name: the CSR's, as step-ca's admin template
            return SignOptions(token_id=token_id, subject=None, sans=None, claims=self.claims,
                               extension=self._extension)
        email = self._verified_email(identity, token.claims)
        uri = issuer_uri(identity.issuer, identity.subject)
        # the person's own names, whatever the CSR asks (step-ca's template ignores them too)
        sans = SANs(emails=(email,), uris=(uri,) if uri else ())
        return SignOptions(token_id=token_id, subject=email, sans=sans, claims=self.claims,
                           extension=self._extension)

    def authorize_revoke(self, token: Token) -> str:
        identity, token_id = self._authorize(token)
        if not identity.admin:  # step-ca's: only admins revoke with an ID token
            raise Unauthorized("cannot revoke with a non-admin ID token")
        return token_id

