"""Test helpers for stepca and its plugins: a throwaway PKI, tokens, CSRs, an in-process CA,
and contract suites a plugin's tests inherit (see ``stepca.testing.contracts``).

Nothing here touches the network: ``TestCA.client`` drives the real Falcon app in-process.
"""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

__all__ = ["TestCA", "TestPKI", "make_csr", "make_pki", "make_token",
           "ProvisionerContract", "KeyStoreContract", "CertificateStoreContract",
           "RevocationStoreContract", "StoreContract", "row_counts"]

_CONTRACTS = {"ProvisionerContract", "KeyStoreContract", "CertificateStoreContract",
              "RevocationStoreContract", "StoreContract"}


def __getattr__(name: str) -> Any:
    # The contract suites import pytest: load them only when a plugin's tests ask.
    if name in _CONTRACTS:
        from stepca.testing import contracts

        return getattr(contracts, name)
    raise AttributeError(f"module 'stepca.testing' has no attribute {name!r}")

PASSWORD = b"stepca-test-password"


@dataclass(frozen=True)
class TestPKI:
    """A PKI made by ``step ca init``'s code, with the provisioner key already decrypted."""

    __test__ = False  # not a pytest test class

    steppath: Path
    ca_json: dict[str, Any]
    provisioner_name: str
    provisioner_kid: str
    provisioner_key: Any
    fingerprint: str
    root: x509.Certificate
    password: bytes = PASSWORD

    def config(self, tmp_path: Path, *, db: dict[str, Any] | None = None,
               authority: dict[str, Any] | None = None, provisioners: Iterable[dict] | None = None,
               **top: Any) -> Path:
        """Write a ca.json variant under ``tmp_path`` (fresh database by default) and return it."""
        from stepca.config import Config  # noqa: F401  (keeps the import cost out of collection)

        raw = copy.deepcopy(self.ca_json)
        raw["db"] = db if db is not None else {"type": "sqlite",
                                               "dataSource": str(tmp_path / "db" / "stepca.db")}
        if provisioners is not None:
            raw["authority"]["provisioners"] = list(provisioners)
        raw["authority"].update(authority or {})
        raw.update(top)
        path = tmp_path / "config" / "ca.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(raw, indent="\t"))
        return path

    def offline_certificate(self, public_key: Any, subject: str = "foo.example.com", *,
                            serial: int | None = None) -> tuple[x509.Certificate, x509.Certificate]:
        """A client certificate for ``public_key`` signed with the intermediate's key outside
        any CA (no record, no provisioner extension), and the intermediate."""
        from cryptography.hazmat.primitives import hashes

        from stepca.timeutil import utcnow
        from stepca.x509util import load_private_key

        intermediate = x509.load_pem_x509_certificate(
            (self.steppath / "certs" / "intermediate_ca.crt").read_bytes())
        signer = load_private_key(
            (self.steppath / "secrets" / "intermediate_ca_key").read_bytes(), self.password)
        now = utcnow()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(intermediate.subject).public_key(public_key)
            .serial_number(serial or x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(signer, hashes.SHA256()))
        return certificate, intermediate

def make_pki(steppath: Path, *, name: str = "Test", dns_names: Iterable[str] = ("localhost",
             "127.0.0.1"), address: str = "127.0.0.1:9000", provisioner: str = "admin",
             password: bytes = PASSWORD) -> TestPKI:
    from stepca._softkms import SoftKeyStore
    from stepca.jose import decrypt_pbes2, key_from_jwk
    from stepca.pki import create_pki
    from stepca.x509util import load_certificates

    pki = create_pki(steppath, name=name, dns_names=list(dns_names), address=address,
                     provisioner=provisioner, password=password, provisioner_password=password,
                     key_store=SoftKeyStore(steppath))
    ca_json = json.loads(pki.ca_config.read_text())
    entry = ca_json["authority"]["provisioners"][0]
    key = key_from_jwk(json.loads(decrypt_pbes2(entry["encryptedKey"], password)))
    return TestPKI(steppath, ca_json, provisioner, pki.provisioner_kid, key, pki.fingerprint,
                   load_certificates(pki.root_crt.read_bytes())[0], password)


def make_csr(subject: str = "foo.example.com", sans: Iterable[str] | None = None, *,
             key: Any = None) -> tuple[str, Any]:
    """A PEM CSR (CN = subject, SANs as given; default [subject]) and its private key."""
    from cryptography.hazmat.primitives import serialization

    from stepca.x509util import generate_key, signature_hash, split_sans

    key = key or generate_key("EC")
    builder = x509.CertificateSigningRequestBuilder()
    if subject:
        builder = builder.subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                                     subject)]))
    else:
        builder = builder.subject_name(x509.Name([]))
    names = split_sans(list(sans) if sans is not None else [subject]).general_names()
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    csr = builder.sign(key, signature_hash(key))
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


def make_token(pki: TestPKI, subject: str = "foo.example.com", *, sans: list[str] | None = None,
               audience: str = "https://localhost:9000/1.0/sign", issuer: str | None = None,
               kid: str | None = None, key: Any = None, lifetime: timedelta = timedelta(minutes=5),
               now: datetime | None = None, omit: Iterable[str] = (),
               header: dict[str, Any] | None = None, alg: str | None = None,
               **claims: Any) -> str:
    """A sign token as ``step ca token`` makes it; every part can be overridden or omitted."""
    from stepca.jose import sign_jwt
    from stepca.timeutil import utcnow

    now = now or utcnow()
    payload: dict[str, Any] = {
        "aud": audience, "iss": issuer or pki.provisioner_name, "sub": subject,
        "iat": int(now.timestamp()), "nbf": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()), "jti": secrets.token_hex(32),
        "sans": sans if sans is not None else [subject], "sha": pki.fingerprint,
    }
    payload.update(claims)
    for name in omit:
        payload.pop(name, None)
    return sign_jwt(payload, key or pki.provisioner_key, alg=alg,
                    headers={"kid": kid or pki.provisioner_kid, **(header or {})})


def row_counts(database: str | Path) -> tuple[int, int, int]:
    """(issued certificates, spent token ids, revocations) in a ``stepca-store-sqlite``
    database, read without writing: what a refused request must leave as it was."""
    import sqlite3

    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        return tuple(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # type: ignore[return-value]
                     for table in ("x509_certs", "used_ott", "revoked_x509_certs"))


@dataclass
class TestCA:
    """An ``Authority`` and its Falcon app, in-process, over a given ca.json."""

    __test__ = False

    config_path: Path
    plugins: list[object] = field(default_factory=list)
    password: bytes = PASSWORD
    clock: Callable[[], datetime] | None = None
    load_entrypoints: bool = True

    def __post_init__(self) -> None:
        from falcon import testing

        from stepca.app import create_app
        from stepca.authority import Authority
        from stepca.config import Config
        from stepca.plugins import Plugins

        self.plugin_manager = Plugins.load(plugins=self.plugins,
                                           load_entrypoints=self.load_entrypoints)
        kwargs = {"clock": self.clock} if self.clock else {}
        self.authority = Authority(Config.load(self.config_path), plugins=self.plugin_manager,
                                   password=self.password, **kwargs)
        self.client = testing.TestClient(create_app(self.authority))

    def rows(self) -> tuple[int, int, int]:
        """What its SQLite database holds: see ``row_counts``."""
        return row_counts(self.authority.config.db["dataSource"])

    def sign(self, csr: str, ott: str, **extra: Any) -> Any:
        return self.client.simulate_post("/1.0/sign", json={"csr": csr, "ott": ott, **extra})

    def close(self) -> None:
        self.authority.close()
