"""The views the differential tests compare keep what a client can notice and drop what is
bound to differ (keys, serials, times): checked here without smallstep's server."""

from __future__ import annotations

from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from stepca._der import oid, sequence, tlv
from stepca.testing.reference import body_layout, certificate_shape, name_shape
from stepca.timeutil import utcnow


def test_name_shape_tells_printable_from_utf8_strings() -> None:
    def name(tag: int) -> bytes:
        return sequence(tlv(0x31, sequence(oid("2.5.4.3"), tlv(tag, b"foo.localhost"))))

    assert name_shape(name(0x13)) == [[("2.5.4.3", "PrintableString", "foo.localhost")]]
    assert name_shape(name(0x0C)) == [[("2.5.4.3", "UTF8String", "foo.localhost")]]


def _certificate(extensions: list[tuple[x509.ExtensionType, bool]], *, days: int = 1,
                 serial: int = 1 << 120) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())  # a new key each time: shapes ignore keys
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "foo.localhost")])
    now = utcnow()
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(serial)
               .not_valid_before(now).not_valid_after(now + timedelta(days=days)))
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(key, hashes.SHA256())


SANS = x509.SubjectAlternativeName([x509.DNSName("a.localhost"), x509.RFC822Name("me@localhost")])
USAGE = x509.KeyUsage(True, False, False, False, False, False, False, False, False)


def test_certificate_shape_ignores_keys_serial_values_and_times() -> None:
    assert (certificate_shape(_certificate([(SANS, False), (USAGE, True)]))
            == certificate_shape(_certificate([(SANS, False), (USAGE, True)], serial=1 << 121)))


def test_certificate_shape_sees_order_criticality_names_validity_and_serial_size() -> None:
    shape = certificate_shape(_certificate([(SANS, False), (USAGE, True)]))
    reordered = x509.SubjectAlternativeName(list(SANS)[::-1])
    for other in (_certificate([(USAGE, True), (SANS, False)]),
                  _certificate([(SANS, True), (USAGE, True)]),
                  _certificate([(reordered, False), (USAGE, True)]),
                  _certificate([(SANS, False), (USAGE, True)], days=2),
                  _certificate([(SANS, False), (USAGE, True)], serial=1 << 150)):
        assert certificate_shape(other) != shape


def test_body_layout_keeps_spacing_and_the_final_newline_only() -> None:
    assert body_layout(b'{"status":404,"message":"a"}\n') == body_layout(
        b'{"status":400,"message":"b \\" c"}\n')
    assert body_layout(b'{"status":404,"message":"a"}\n') != body_layout(
        b'{"status": 404, "message": "a"}')
