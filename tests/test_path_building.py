"""The CLI verifies a server's chain as Go does when OpenSSL could not: by trying every issuer
the server sent (a cross-signed intermediate beside its twin, during a root rotation), and
still refusing a chain to no trusted root or for another name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stepca_cli.httpclient import _chain_verifies

NOW = datetime.now(UTC)


def certificate(subject: str, key, issuer: str, issuer_key, *, ca: bool,  # type: ignore[no-untyped-def]
                san: x509.GeneralName | None = None) -> x509.Certificate:
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - timedelta(hours=1)).not_valid_after(NOW + timedelta(days=1))
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   issuer_key.public_key()), False)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(False, False, False, False, False, True,
                                                      True, False, False), True)
    else:
        builder = (builder.add_extension(x509.SubjectAlternativeName([san]), False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                                  False))
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def rotation():  # type: ignore[no-untyped-def]
    old_key, new_key, intermediate_key, leaf_key = (ec.generate_private_key(ec.SECP256R1())
                                                    for _ in range(4))
    old = certificate("Old Root", old_key, "Old Root", old_key, ca=True)
    new = certificate("New Root", new_key, "New Root", new_key, ca=True)
    intermediate = certificate("Intermediate", intermediate_key, "New Root", new_key, ca=True)
    cross = certificate("Intermediate", intermediate_key, "Old Root", old_key, ca=True)
    leaf = certificate("ca.internal", leaf_key, "Intermediate", intermediate_key, ca=False,
                       san=x509.DNSName("ca.internal"))
    return old, new, [leaf, intermediate, cross]


def test_either_root_finds_its_path_through_the_twins(rotation) -> None:  # type: ignore[no-untyped-def]
    old, new, chain = rotation
    assert _chain_verifies(chain, "ca.internal", (old,))
    assert _chain_verifies(chain, "ca.internal", (new,))


def test_another_name_or_an_unrelated_root_is_still_refused(rotation) -> None:  # type: ignore[no-untyped-def]
    old, new, chain = rotation
    key = ec.generate_private_key(ec.SECP256R1())
    stranger = certificate("Stranger", key, "Stranger", key, ca=True)
    assert not _chain_verifies(chain, "other.internal", (old,))
    assert not _chain_verifies(chain, "127.0.0.1", (new,))
    assert not _chain_verifies(chain, "ca.internal", (stranger,))
    assert not _chain_verifies(chain[:1], "ca.internal", (old,))  # no intermediate sent
    assert not _chain_verifies([], "ca.internal", (old,))
