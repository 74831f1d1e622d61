"""Creating a new PKI: what ``step ca init`` writes under ``$STEPPATH``."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from stepca.config import DEFAULT_CIPHER_SUITES, url_for
from stepca.jose import encrypt_pbes2, jwk_from_key, public_jwk
from stepca.keystore import KeyStore
from stepca.timeutil import utcnow
from stepca.x509util import (
    authority_key_identifier,
    ca_key_usage,
    fingerprint,
    generate_key,
    go_name,
    random_serial,
    signature_hash,
    write_private,
)

__all__ = ["PKI", "ca_url_for", "create_pki", "escrow_private_jwk", "new_provisioner_key"]

CA_VALIDITY = timedelta(days=3650)


@dataclass(frozen=True)
class PKI:
    steppath: Path
    root_crt: Path
    root_key: Path
    intermediate_crt: Path
    intermediate_key: Path
    ca_config: Path
    defaults: Path
    database: Path
    fingerprint: str
    provisioner_kid: str


def ca_url_for(dns_names: list[str], address: str) -> str:
    """``https://<first DNS name>[:port]``, the port left out when it is 443."""
    return url_for("https", dns_names[0], address)


def _ca_certificate(*, subject: x509.Name, issuer: x509.Certificate | None, public_key: Any,
                    signer: Any, path_length: int) -> x509.Certificate:
    """A CA certificate as smallstep's ``pki`` package makes one through Go's x509: a 128-bit
    random serial, ten years from now, key usage and basic constraints critical, the SKI of
    RFC 5280 method 1, and an AKI only when another certificate (``issuer``) signs it."""
    now = utcnow().replace(microsecond=0)
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(subject if issuer is None else issuer.subject)
               .public_key(public_key)
               .serial_number(random_serial())
               .not_valid_before(now).not_valid_after(now + CA_VALIDITY)
               .add_extension(ca_key_usage(), critical=True)
               .add_extension(x509.BasicConstraints(ca=True, path_length=path_length),
                              critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                              critical=False))
    if issuer is not None:
        builder = builder.add_extension(authority_key_identifier(issuer), critical=False)
    return builder.sign(signer, signature_hash(signer))


def escrow_private_jwk(private_jwk: dict[str, Any], password: bytes) -> str:
    """A provisioner's ``encryptedKey``: its private JWK sealed with ``password`` as a PBES2 JWE,
    as step escrows it in ca.json."""
    return encrypt_pbes2(json.dumps(private_jwk, sort_keys=True).encode(), password)


def new_provisioner_key(password: bytes) -> tuple[dict[str, Any], str]:
    """A new JWK provisioner key as step makes one (EC P-256, the thumbprint as ``kid``): its
    public JWK (ca.json ``key``) and its escrowed private key (``encryptedKey``)."""
    private_jwk = jwk_from_key(generate_key("EC"), private=True)
    return public_jwk(private_jwk), escrow_private_jwk(private_jwk, password)


def create_pki(steppath: Path, *, name: str, dns_names: list[str], address: str,
               provisioner: str, password: bytes, provisioner_password: bytes,
               key_store: KeyStore, ca_url: str | None = None) -> PKI:
    """Root (10 years, pathlen 1) and intermediate (10 years, pathlen 0) on EC P-256, one JWK
    provisioner with its key escrowed as a PBES2 JWE, ca.json and defaults.json."""
    steppath.mkdir(parents=True, exist_ok=True, mode=0o700)
    for sub in ("certs", "secrets", "config", "db"):
        (steppath / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(steppath / sub, 0o700)
    certs, secrets, config = steppath / "certs", steppath / "secrets", steppath / "config"
    pki = PKI(steppath, certs / "root_ca.crt", secrets / "root_ca_key",
              certs / "intermediate_ca.crt", secrets / "intermediate_ca_key",
              config / "ca.json", config / "defaults.json", steppath / "db" / "stepca.db", "", "")

    root_key = key_store.create_signer(str(pki.root_key), password=password)
    root_name = go_name((NameOID.ORGANIZATION_NAME, name),
                        (NameOID.COMMON_NAME, f"{name} Root CA"))
    root = _ca_certificate(subject=root_name, issuer=None, public_key=root_key.public_key(),
                           signer=root_key, path_length=1)
    write_private(pki.root_crt, root.public_bytes(serialization.Encoding.PEM))

    time.sleep(1)  # as step does: the intermediate never predates the root to the second
    int_key = key_store.create_signer(str(pki.intermediate_key), password=password)
    int_name = go_name((NameOID.ORGANIZATION_NAME, name),
                       (NameOID.COMMON_NAME, f"{name} Intermediate CA"))
    intermediate = _ca_certificate(subject=int_name, issuer=root,
                                   public_key=int_key.public_key(), signer=root_key,
                                   path_length=0)
    write_private(pki.intermediate_crt, intermediate.public_bytes(serialization.Encoding.PEM))

    provisioner_jwk, encrypted = new_provisioner_key(provisioner_password)
    ca_config = {
        "root": str(pki.root_crt),
        "federatedRoots": None,
        "crt": str(pki.intermediate_crt),
        "key": str(pki.intermediate_key),
        "address": address,
        "insecureAddress": "",
        "dnsNames": dns_names,
        "logger": {"format": "text"},
        "db": {"type": "sqlite", "dataSource": str(pki.database)},
        "authority": {
            "provisioners": [{"type": "JWK", "name": provisioner,
                              "key": provisioner_jwk, "encryptedKey": encrypted}],
            "enableAdmin": False,
        },
        "tls": {"cipherSuites": list(DEFAULT_CIPHER_SUITES), "minVersion": 1.2,
                "maxVersion": 1.3, "renegotiation": False},
    }
    root_fp = fingerprint(root)
    defaults = {"ca-url": ca_url or ca_url_for(dns_names, address),
                "ca-config": str(pki.ca_config), "fingerprint": root_fp,
                "root": str(pki.root_crt)}
    write_private(pki.ca_config, (json.dumps(ca_config, indent="\t") + "\n").encode(),
                  mode=0o644)
    write_private(pki.defaults, (json.dumps(defaults, indent="\t") + "\n").encode(), mode=0o644)
    return PKI(**{**pki.__dict__, "fingerprint": root_fp,
                  "provisioner_kid": provisioner_jwk["kid"]})
