"""The AWS provisioner: an EC2 instance's identity document, signed by AWS, authorizes one
certificate for that instance (trust on first use), as step-ca's.

The token is step's wrapper: an HS256 JWT whose HMAC key is the document's raw RSA signature,
carrying the document and the signature in its ``amazon`` claim. That key is in the token
itself, so the HMAC proves nothing on its own: what makes the token worth anything is AWS's RSA
signature over the document, checked first."""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from stepca.bounded_read import FileTooLarge, read_file_bounded
from stepca.errors import Unauthorized
from stepca.jose import (
    JOSEFormatError,
    SignatureError,
    Token,
    b64url_decode,
    b64url_encode,
    verify_compact,
)
from stepca.provisioner import (
    CommonNameValidator,
    CSRValidator,
    Provisioner,
    ProvisionerContext,
    SANsValidator,
    SignOptions,
    check_config_keys,
    check_fragment_audience,
    check_token_claims,
    config_duration,
    config_flag,
    config_strings,
    fragment_lookup_key,
)
from stepca.x509util import SANs, ProvisionerExtension

__all__ = ["AWSProvisioner", "InstanceIdentity", "aws_certificates", "load_iid_roots"]

AWS_ISSUER = "ec2.amazonaws.com"
IMDS_VERSIONS = ("v2", "v1")  # step-ca's default, in the order a client tries them
MAX_DOCUMENT = 4096  # a real document is about 500 bytes
MAX_SIGNATURE = 1024  # an 8192-bit RSA signature; AWS's are 1024 or 2048 bits
MAX_FIELD = 64  # account and instance ids, region, IP: short identifiers
MAX_ROOTS_FILE = 1 << 20
_KNOWN_KEYS = frozenset({"type", "name", "accounts", "iidRoots", "imdsVersions",
                         "disableCustomSANs", "disableTrustOnFirstUse", "instanceAge", "claims"})


def aws_certificates() -> list[x509.Certificate]:
    """AWS's published certificates for identity document signatures, shipped with the plugin
    (``aws_certificates.pem``; where they come from is written at its top)."""
    data = resources.files(__package__).joinpath("aws_certificates.pem").read_bytes()
    return x509.load_pem_x509_certificates(data)


def load_iid_roots(path: str) -> list[x509.Certificate]:
    """The certificates of an ``iidRoots`` PEM bundle; ``ValueError`` with the reason."""
    try:
        data = read_file_bounded(path, MAX_ROOTS_FILE)
    except OSError as exc:
        raise ValueError(f"'iidRoots': cannot read {path}: {exc.strerror or exc}") from None
    except FileTooLarge:
        raise ValueError(f"'iidRoots': {path} is larger than 1 MiB") from None
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError(f"'iidRoots': {path} holds no PEM certificate") from None


def _rsa_keys(certificates: list[x509.Certificate], origin: str) -> tuple[rsa.RSAPublicKey, ...]:
    keys = []
    for index, certificate in enumerate(certificates, 1):
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError(f"{origin}: certificate {index} has no RSA key; identity document "
                             f"signatures are RSA-SHA256")
        keys.append(key)
    return tuple(keys)


@dataclass(frozen=True)
class InstanceIdentity:
    """What a verified instance identity document says about the instance."""

    account_id: str
    instance_id: str
    private_ip: str
    region: str
    pending_time: str | None

    @classmethod
    def of(cls, document: bytes) -> InstanceIdentity:
        try:
            fields = json.loads(document)
        except (ValueError, RecursionError):
            raise Unauthorized("invalid token: the identity document is not JSON") from None
        if not isinstance(fields, dict):
            raise Unauthorized("invalid token: the identity document is not a JSON object")
        values = {}
        for key in ("accountId", "instanceId", "privateIp", "region"):
            value = fields.get(key)
            if not isinstance(value, str) or not 0 < len(value) <= MAX_FIELD:
                raise Unauthorized(f"invalid token: the identity document's {key} must be a "
                                   f"non-empty string of at most {MAX_FIELD} characters")
            values[key] = value
        try:
            ipaddress.IPv4Address(values["privateIp"])
        except ValueError:
            raise Unauthorized("invalid token: the identity document's privateIp is not an "
                               "IPv4 address") from None
        pending = fields.get("pendingTime")
        return cls(values["accountId"], values["instanceId"], values["privateIp"],
                   values["region"], pending if isinstance(pending, str) else None)

    @property
    def dns_name(self) -> str:
        """The instance's private DNS name, as step-ca derives it."""
        return f"ip-{self.private_ip.replace('.', '-')}.{self.region}.compute.internal"

    def pending_since(self) -> datetime:
        """When the instance was launched (``pendingTime``, RFC 3339)."""
        try:
            if self.pending_time is None or len(self.pending_time) > MAX_FIELD:
                raise ValueError
            launched = datetime.fromisoformat(self.pending_time)
        except ValueError:
            raise Unauthorized("invalid token: the identity document's pendingTime is missing "
                               "or not an RFC 3339 time") from None
        if launched.tzinfo is None:
            raise Unauthorized("invalid token: the identity document's pendingTime has no "
                               "time zone")
        return launched


def _decode_b64(value: Any, label: str, limit: int) -> bytes:
    # bounded before decoding: a base64 text of n bytes decodes to at most 3n/4
    if not isinstance(value, str) or not 0 < len(value) <= (limit + 2) // 3 * 4:
        raise Unauthorized(f"invalid token: amazon.{label} must be base64 of at most "
                           f"{limit} bytes")
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Unauthorized(f"invalid token: amazon.{label} is not base64") from None
    if len(decoded) > limit:
        raise Unauthorized(f"invalid token: amazon.{label} must be base64 of at most "
                           f"{limit} bytes")
    return decoded




def _imds_versions(config: Mapping[str, Any]) -> tuple[str, ...]:
    value = config.get("imdsVersions")
    if value is None or value == []:
        return IMDS_VERSIONS
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("'imdsVersions' must be a list of \"v1\" and \"v2\"")
    for version in value:
        if version not in IMDS_VERSIONS:
            raise ValueError(f"'imdsVersions': {version[:20]!r} is not a supported AWS instance "
                             f"metadata service version (v1, v2)")
    return tuple(dict.fromkeys(value))


class AWSProvisioner(Provisioner):
    type = "AWS"
    type_id = 4

    def __init__(self, config: Mapping[str, Any], *, context: ProvisionerContext) -> None:
        super().__init__(config, context=context)
        check_config_keys(config, _KNOWN_KEYS)
        self.accounts = config_strings(config, "accounts")
        self.disable_custom_sans = config_flag(config, "disableCustomSANs")
        self.disable_trust_on_first_use = config_flag(config, "disableTrustOnFirstUse")
        self.imds_versions = _imds_versions(config)
        self.instance_age = config_duration(config, "instanceAge")
        roots = config.get("iidRoots")
        if roots in (None, ""):
            self.keys = _rsa_keys(aws_certificates(), "aws_certificates.pem")
        elif isinstance(roots, str):
            # as step-ca's: iidRoots replaces AWS's certificates, it does not add to them
            self.keys = _rsa_keys(load_iid_roots(roots), f"'iidRoots' {roots}")
        else:
            raise ValueError("'iidRoots' must be the path of a PEM file")

    @staticmethod
    def token_lookup_key(token: Token) -> str | None:
        return fragment_lookup_key(token, "aws")

    @property
    def lookup_keys(self) -> tuple[str, ...]:
        return (f"aws/{self.name}",)

    def _document(self, token: Token) -> tuple[bytes, bytes]:
        """The document and its signature, once AWS's signature over the document verifies."""
        amazon = token.claims.get("amazon")
        if not isinstance(amazon, dict):
            raise Unauthorized("invalid token: the amazon claim is missing")
        document = _decode_b64(amazon.get("document"), "document", MAX_DOCUMENT)
        signature = _decode_b64(amazon.get("signature"), "signature", MAX_SIGNATURE)
        for key in self.keys:
            try:
                key.verify(signature, document, padding.PKCS1v15(), hashes.SHA256())
                return document, signature
            except InvalidSignature:
                continue
        raise Unauthorized("invalid token: the identity document's signature does not verify "
                           "with AWS's certificates")

    @staticmethod
    def _wrapper(token: Token, signature: bytes) -> None:
        """step's HS256 wrapper, keyed with the document's signature; nothing else is taken."""
        if token.alg != "HS256":
            raise Unauthorized("invalid token: an AWS identity token is HS256")
        try:
            verify_compact(token.raw, signature, "HS256")
            encoded = token.raw.rpartition(".")[2]
            # one spelling per token: the id spent without TOFU must not come in a second one
            canonical = b64url_encode(b64url_decode(encoded)) == encoded
        except (SignatureError, JOSEFormatError, ValueError):
            canonical = False
        if not canonical:
            raise Unauthorized("invalid token signature")

    def authorize_sign(self, token: Token) -> SignOptions:
        # AWS's signature first: nothing in the token is trusted before it, nor spent.
        document, signature = self._document(token)
        self._wrapper(token, signature)
        check_token_claims(token, issuer=AWS_ISSUER, audiences=self.context.audiences,
                           kind="sign", context=self.context)
        check_fragment_audience(token, self.context.audiences, f"aws/{self.name}")
        instance = InstanceIdentity.of(document)
        if self.accounts and instance.account_id not in self.accounts:
            raise Unauthorized("invalid token: the identity document's account is not allowed")
        if self.instance_age is not None and self.instance_age > timedelta(0):
            age = self.context.clock().timestamp() - instance.pending_since().timestamp()
            if age > self.instance_age.total_seconds():
                raise Unauthorized("invalid token: the instance is older than instanceAge "
                                   "(its pendingTime is too old)")
        subject = str(token.claims["sub"])
        if self.disable_custom_sans and subject not in (instance.instance_id,
                                                        instance.private_ip, instance.dns_name):
            raise Unauthorized("invalid token: with disableCustomSANs the subject must be the "
                               "instance id, its private IP or its private DNS name")
        if self.disable_trust_on_first_use:
            # step-ca hashes the whole token; the signing input is what the HMAC fixes
            token_id = hashlib.sha256(token.signing_input.encode()).hexdigest()
        else:
            # one certificate per instance: the id is the instance's, as step-ca's
            unique = f"aws/{self.name}.{instance.instance_id}"
            token_id = hashlib.sha256(unique.encode()).hexdigest()
        # as step-ca's: the CSR's common name is empty or the token's subject
        validators: list[CSRValidator] = [CommonNameValidator((subject,))]
        sans: SANs | None = None
        if self.disable_custom_sans:
            sans = SANs(dns=(instance.dns_name,),
                        ips=(ipaddress.IPv4Address(instance.private_ip),))
            validators.append(SANsValidator(sans))
        extension = ProvisionerExtension(self.type_id, self.name, instance.account_id,
                                         ("InstanceID", instance.instance_id))
        return SignOptions(token_id=token_id, subject=None, sans=sans, claims=self.claims,
                           extension=extension, validators=tuple(validators))

    def public_json(self) -> dict[str, Any]:
        # as step-ca lists it: the IMDS versions its clients use, the default filled in
        return {**self.config, "imdsVersions": list(self.imds_versions)}
