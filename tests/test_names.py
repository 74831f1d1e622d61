"""The syntax of the names a certificate carries (decision 0014): DNS names per RFC 1123 with a
wildcard only as the whole leftmost label, IDNA refused with the A-label to use, IP addresses
without zones, emails and URIs parsed, common names without controls; and ca.json's own names
checked at start-up."""

from __future__ import annotations

import ipaddress

import pytest

from stepca.config import Config, ConfigError
from stepca.names import (
    check_common_name,
    check_dns_name,
    check_email,
    check_host_names,
    check_ip,
    check_uri,
)


@pytest.mark.parametrize("name", [
    "localhost", "foo.example.com", "FOO.Example.COM", "a-b.c-d.example", "1.example",
    "*.example.com", "*.internal", "xn--bcher-kva.example", "a" * 63 + ".example",
    ".".join(["a" * 63] * 3) + "." + "a" * 61,  # 253 characters
    "example.123a",
])
def test_dns_names_accepted(name):
    check_dns_name(name)


@pytest.mark.parametrize(("name", "message"), [
    ("", "has an empty label"),
    ("example.com.", "has an empty label"),
    ("a..example", "has an empty label"),
    ("a b.example", "the label 'a b' is not letters, digits and inner hyphens"),
    ("a\x00b.example", r"the label 'a\\x00b' is not letters"),
    ("a\tb", r"the label 'a\\tb' is not letters"),
    ("foo\n.example", r"the label 'foo\\n' is not letters"),
    ("-a.example", "the label '-a' is not letters"),
    ("a-.example", "the label 'a-' is not letters"),
    ("under_score.example", "the label 'under_score' is not letters"),
    ("a" * 64 + ".example", "a label is longer than 63 characters"),
    (".".join(["a" * 63] * 4), "is longer than 253 characters"),
    ("foo*.example.com", "a wildcard must be the whole leftmost label"),
    ("*", "a wildcard must be the whole leftmost label"),
    ("*.*.example.com", "a wildcard must be the whole leftmost label"),
    ("foo.*.example.com", "a wildcard must be the whole leftmost label"),
    ("1.2.3.999", "ends in a numeric label"),
    ("12345", "ends in a numeric label"),
    ("bücher.example", "is not ASCII: request its A-label 'xn--bcher-kva.example' instead"),
    ("Bücher.Example", "request its A-label 'xn--bcher-kva.example' instead"),
    ("*.bücher.example", r"request its A-label '\*.xn--bcher-kva.example' instead"),
    ("\u202eevil.example", "is not ASCII, nor a valid internationalized domain name"),
    ("a\u200db.example", "is not ASCII, nor a valid internationalized domain name"),
    ("١٢٣.example", "is not ASCII"),
])
def test_dns_names_refused(name, message):
    with pytest.raises(ValueError, match=message):
        check_dns_name(name)


def test_email_domains_take_no_wildcard():
    with pytest.raises(ValueError, match="it cannot hold a wildcard"):
        check_email("a@*.example.com")


@pytest.mark.parametrize("address", ["a@example.com", "first.last+tag@sub.example.com",
                                     "o'brien@example.com", "x@localhost"])
def test_emails_accepted(address):
    check_email(address)


@pytest.mark.parametrize(("address", "message"), [
    ("@example.com", "is not local@domain"),
    ("nobody", "is not local@domain"),
    ("a b@example.com", "has an invalid local part"),
    (".a@example.com", "has an invalid local part"),
    ("a..b@example.com", "has an invalid local part"),
    ('"quoted"@example.com', "has an invalid local part"),
    ("a\x00@example.com", "has an invalid local part"),
    ("x" * 65 + "@example.com", "has an invalid local part"),
    ("ü@example.com", "has a non-ASCII local part"),
    ("a@", "its domain '' has an empty label"),
    ("a@b c.example", "its domain 'b c.example' is not a valid host name"),
    ("a@bücher.example", "request its A-label 'xn--bcher-kva.example' instead"),
])
def test_emails_refused(address, message):
    with pytest.raises(ValueError, match=message):
        check_email(address)


@pytest.mark.parametrize("uri", ["https://example.com/a?b=c#d", "spiffe://trust.example/ns/x",
                                 "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
                                 "http://[::1]:8080/", "mailto:a@example.com",
                                 "https://example.com/%7Euser"])
def test_uris_accepted(uri):
    check_uri(uri)


@pytest.mark.parametrize(("uri", "message"), [
    ("https://example.com/a b", "holds characters a URI cannot"),
    ("https://example.com/\x00", "holds characters a URI cannot"),
    ("https://example.com/%zz", "holds characters a URI cannot"),
    ("https://bücher.example/", "is not ASCII"),
    ("example.com/path", "has no scheme"),
    ("1http://example.com", "has no scheme"),
    ("http://[::1/", "cannot be parsed"),
    ("http://example.com:99999/", "cannot be parsed"),
])
def test_uris_refused(uri, message):
    with pytest.raises(ValueError, match=message):
        check_uri(uri)


def test_ip_addresses_carry_no_zone():
    check_ip(ipaddress.ip_address("fe80::1"))
    with pytest.raises(ValueError, match="has a zone"):
        check_ip(ipaddress.ip_address("fe80::1%eth0"))


@pytest.mark.parametrize("name", ["", "foo.example.com", "Jane Doe", "Zoë Ørsted",
                                  "Step Online CA", "x" * 64])
def test_common_names_accepted(name):
    check_common_name(name)


@pytest.mark.parametrize(("name", "message"), [
    ("a\x00b", "control or invisible character U\\+0000"),
    ("a\nb", "control or invisible character U\\+000A"),
    ("a\x7fb", "control or invisible character U\\+007F"),
    ("a\x85b", "control or invisible character U\\+0085"),
    ("evil\u202etxt.exe", "control or invisible character U\\+202E"),
    ("a\u200bb", "control or invisible character U\\+200B"),
    ("a\u2028b", "control or invisible character U\\+2028"),
    (" padded", "begins or ends with white space"),
    ("x" * 65, "is longer than 64 characters"),
])
def test_common_names_refused(name, message):
    with pytest.raises(ValueError, match=message):
        check_common_name(name)


def test_host_names_are_dns_names_or_addresses():
    check_host_names(["ca.internal", "127.0.0.1", "::1", "[::1]"])
    with pytest.raises(ValueError, match="is not ASCII"):
        check_host_names(["bücher.example"])


# -- ca.json: the CA's own TLS certificate ---------------------------------------------------------

@pytest.mark.parametrize(("change", "message"), [
    ({"dnsNames": ["bücher.example"]},
     "ca.json dnsNames: DNS name 'bücher.example' is not ASCII: request its A-label "
     "'xn--bcher-kva.example' instead"),
    ({"dnsNames": ["ca internal"]}, "ca.json dnsNames: DNS name 'ca internal' is not a valid"),
    ({"dnsNames": ["ca.internal", "fe80::1%eth0"]}, "ca.json dnsNames: IP address .* has a zone"),
    ({"dnsNames": "ca.internal"}, "'dnsNames' must be a list of host names and IP addresses"),
    ({"dnsNames": ["ca.internal", 7]}, "'dnsNames' must be a list"),
    ({"commonName": "CA\x00"}, "ca.json commonName: common name .* control or invisible"),
    ({"commonName": 5}, "ca.json commonName: it must be a string"),
    ({"authority": {"template": {"commonName": "x" * 65}}},
     "ca.json authority.template.commonName: common name .* is longer than 64 characters"),
])
def test_ca_json_names_are_checked_at_start_up(stepca_pki, tmp_path, change, message):
    if "authority" in change:
        path = stepca_pki.config(tmp_path, authority=change["authority"])
    else:
        path = stepca_pki.config(tmp_path, **change)
    with pytest.raises(ConfigError, match=message):
        Config.load(path)


def test_ca_json_default_names_load(stepca_pki, tmp_path):
    config = Config.load(stepca_pki.config(tmp_path, dnsNames=["ca.internal", "10.0.0.1"]))
    assert config.dns_names == ("ca.internal", "10.0.0.1")
