"""Making one-time tokens as ``step ca token`` does: pick a provisioner, then its type's client
(``stepca.provisioner_client``, from a plugin) makes the token; ``make_token`` signs for them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stepca.jose import default_alg, jwk_from_key, sign_jwt
from stepca.provisioner_client import ClientFlag, ProvisionerClient, TokenRequest
from stepca.timeutil import parse_time_or_duration, utcnow
from stepca.x509util import load_private_key
from stepca_cli import ui
from stepca_cli.client import CAClient
from stepca_cli.errors import StepError

if TYPE_CHECKING:
    from stepca.plugins import Plugins

DEFAULT_VALIDITY = timedelta(minutes=5)
MIN_VALIDITY, MAX_VALIDITY = timedelta(seconds=10), timedelta(hours=1)


def choose_provisioner(provisioners: list[dict[str, Any]], *, name: str | None,
                       kid: str | None, command: str) -> dict[str, Any]:
    candidates = [p for p in provisioners
                  if (not name or p.get("name") == name)
                  and (not kid or (p.get("key") or {}).get("kid") == kid)]
    if not candidates:
        wanted = f" named '{name}'" if name else ""
        wanted += f" with kid '{kid}'" if kid else ""
        raise StepError(f"cannot find a provisioner{wanted}")
    if len(candidates) > 1:
        if not ui.has_terminal():
            names = ", ".join(f"{p.get('name')} ({p.get('type')})" for p in candidates)
            raise StepError(f"'{command}' requires the '--provisioner' flag: several provisioners "
                            f"match ({names})")
        chosen = candidates[ui.select("What provisioner key do you want to use?",
                                      [_describe(p) for p in candidates],
                                      flag="provisioner", command=command)]
    else:
        chosen = candidates[0]
    ui.status("Provisioner", _describe(chosen))
    return chosen


def _describe(p: dict[str, Any]) -> str:
    # as step names them: a JWK's key id, an OIDC provisioner's client id
    kid, client = (p.get("key") or {}).get("kid"), p.get("clientID")
    suffix = f" [kid: {kid}]" if kid else f" [client: {client}]" if client else ""
    return f"{p.get('name')} ({p.get('type')}){suffix}"


def client_for(plugins: Plugins, provisioner: Mapping[str, Any],
               given_flags: Iterable[ClientFlag]) -> ProvisionerClient:
    """The installed client of the provisioner's type; one line naming the distribution to
    install when there is none, and one refusing a flag the type does not use."""
    kind = str(provisioner.get("type", ""))
    registration = plugins.provisioner_clients().get(kind.lower())
    if registration is None:
        from stepca.plugins import distribution_for

        raise StepError(f"provisioner '{provisioner.get('name')}' has type {kind}, which no "
                        f"installed plugin provides a client for: pip install "
                        f"{distribution_for(kind)}")
    cls = registration.load()
    for flag in given_flags:
        if flag not in cls.flags:
            raise StepError(f"flag '--{flag}' is not used by provisioner '"
                            f"{provisioner.get('name')}' of type {kind}")
    return cls()


def token_window(not_before: str | None, not_after: str | None,
                 now: datetime) -> tuple[datetime, datetime]:
    try:
        nbf = parse_time_or_duration(not_before, relative_to=now) if not_before else now
        exp = (parse_time_or_duration(not_after, relative_to=now) if not_after
               else nbf + DEFAULT_VALIDITY)
    except ValueError as exc:
        raise StepError(str(exc)) from None
    if not MIN_VALIDITY <= exp - nbf <= MAX_VALIDITY:
        raise StepError("the token validity (--not-after minus --not-before) must be between "
                        "10 seconds and 1 hour")
    if nbf > now + timedelta(minutes=30):
        raise StepError("--not-before cannot be more than 30 minutes in the future")
    return nbf, exp


def make_token(*, key: Any, kid: str, issuer: str, subject: str, audience: str,
               sans: list[str] | None, root_fingerprint: str | None, not_before: str | None,
               not_after: str | None, extra: dict[str, Any] | None = None,
               headers: dict[str, Any] | None = None) -> str:
    """Sign a token; its ``iat``, ``nbf`` and ``exp`` all count from the moment of signing, so
    a slow password prompt cannot leave ``iat`` behind ``nbf``."""
    now = utcnow()
    nbf, exp = token_window(not_before, not_after, now)
    claims: dict[str, Any] = {
        "aud": audience, "iss": issuer, "sub": subject, "iat": int(now.timestamp()),
        "nbf": int(nbf.timestamp()), "exp": int(exp.timestamp()),
        "jti": secrets.token_hex(32),
    }
    if sans is not None:  # only sign tokens carry SANs
        claims["sans"] = sans
    if root_fingerprint:
        claims["sha"] = root_fingerprint
    claims.update(extra or {})
    alg = default_alg(jwk_from_key(key))
    return sign_jwt(claims, key, alg=alg, headers={"kid": kid, **(headers or {})})


@dataclass(frozen=True)
class SignToken:
    token: str
    csr_sans: list[str] | None
    """The names the provisioner's client proposes for a certificate request that was given
    none (``ProvisionerClient.csr_sans``); None: the subject."""


def sign_token(client: CAClient | None, *, ca_url: str, subject: str, sans: list[str],
                        provisioner: str | None, kid: str | None, key_file: str | None,
                        password: bytes | None, root_fingerprint: str | None,
                        not_before: str | None, not_after: str | None, command: str,
                        plugins: Plugins,
                        given_flags: Iterable[ClientFlag] = (), console: bool = False,
                        offline_provisioners: list[dict[str, Any]] | None = None,
                        audience_path: str = "/1.0/sign",
                        password_flag: str = "provisioner-password-file") -> SignToken:
    """The whole token flow of ``step ca token``: list, choose, and let the client of the
    chosen provisioner's type make the token. ``password_flag`` is the flag a missing
    provisioner password is asked for; ``given_flags`` the client flags on the command line."""
    token_window(not_before, not_after, utcnow())  # a bad flag fails before any prompt
    if key_file and not provisioner:
        raise StepError(f"'{command}' requires the '--provisioner' flag with '--key'")
    listing = offline_provisioners if offline_provisioners is not None else (
        client.provisioners() if client else [])
    # with --key, --kid names the token's key id, not the provisioner's
    chosen = choose_provisioner(listing, name=provisioner, kid=None if key_file else kid,
                                command=command)
    provisioner_client = client_for(plugins, chosen, given_flags)
    request = TokenRequest(
        provisioner=chosen, ca_url=ca_url, audience=f"{ca_url}{audience_path}", subject=subject,
        sans=(sans or [subject]) if audience_path.endswith("/sign") else None,
        not_before=not_before, not_after=not_after, root_fingerprint=root_fingerprint,
        kid=kid, key_file=key_file, password=password, password_flag=password_flag, command=command,
        console=console,
        fetch_json=client.get_json if client is not None else None)
    try:
        token = provisioner_client.token(request)
        return SignToken(token, provisioner_client.csr_sans(token, request))
    except ValueError as exc:
        raise StepError(f"provisioner '{chosen.get('name')}': {exc}") from None


RENEW_ISSUER = "step-ca-client/1.0"


def x5c_renew_token(crt_file: str, key_file: str, password: bytes | None, *, ca_url: str,
                    subject: str, command: str) -> str:
    """``step ca token --renew``: a token signed by the certificate's own key with its chain in
    the ``x5cInsecure`` header, as step makes it (no ``jti``, no ``sha``, five minutes), which
    lets ``POST /renew`` renew without mutual TLS, even after expiry where allowed."""
    import base64

    from cryptography.hazmat.primitives import serialization

    from stepca.x509util import load_certificates, subject_cn

    try:
        chain = load_certificates(Path(crt_file).read_bytes())
    except (OSError, ValueError) as exc:
        raise StepError(f"error reading {crt_file}: {exc}") from None
    if not chain:
        raise StepError(f"invalid value '{crt_file}' for flag '--x5c-cert': certificate not "
                        "found")
    common_name = subject_cn(chain[0].subject)
    if subject and subject != common_name:
        raise StepError("positional argument <subject> must match the certificate common name")
    try:
        data = Path(key_file).read_bytes()
        if password is None and b"ENCRYPTED" in data:
            password = ui.ask_password(f"Please enter the password to decrypt {key_file}",
                                       flag="password-file", command=command)
        key = load_private_key(data, password)
    except (OSError, ValueError) as exc:
        raise StepError(f"error reading {key_file}: {exc}") from None
    x5c = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain]
    now = int(utcnow().timestamp())
    claims = {"aud": f"{ca_url}/1.0/renew", "iss": RENEW_ISSUER, "sub": common_name,
              "iat": now, "nbf": now, "exp": now + int(DEFAULT_VALIDITY.total_seconds())}
    return sign_jwt(claims, key, alg=default_alg(jwk_from_key(key)),
                    headers={"kid": jwk_from_key(key)["kid"], "x5cInsecure": x5c})
