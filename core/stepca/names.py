"""The syntax of the names a certificate carries (docs/decisions/0014-name-syntax.md).

DNS names follow RFC 1123 (letters, digits and inner hyphens; labels of 1-63 characters; at
most 253 in all), with a wildcard only as the whole leftmost label, as step-ca's name policy
allows it. Non-ASCII names are refused with the A-label to ask for instead (IDNA 2008, by the
``idna`` library). IP addresses are parsed, emails are ``local@domain`` with an RFC 5322
dot-atom local part and a DNS domain, URIs are RFC 3986 ASCII with a scheme. A common name may
hold spaces (it need not be a host name) but no control or invisible formatting characters.

Every check raises ``ValueError`` with a message that quotes the name safely."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from stepca.errors import shown

if TYPE_CHECKING:  # kept light: ca.json's loader checks dnsNames with this module
    from stepca.x509util import SANs

__all__ = ["check_common_name", "check_dns_name", "check_email", "check_host_names", "check_ip",
           "check_sans", "check_uri"]

MAX_DNS_NAME = 253
MAX_COMMON_NAME = 64  # RFC 5280 ub-common-name
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_URI_TEXT = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
# Control characters, invisible format characters (bidi overrides, zero widths), line and
# paragraph separators, surrogates and unassigned code points: none belongs in a subject.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn", "Zl", "Zp"})


def check_dns_name(name: str, *, wildcard: bool = True, what: str = "DNS name") -> None:
    if len(name) > MAX_DNS_NAME:
        raise ValueError(f"{what} {shown(name)} is longer than {MAX_DNS_NAME} characters")
    if not name.isascii():
        raise ValueError(_not_ascii(name, what))
    labels = name.split(".")
    if wildcard and len(labels) > 1 and labels[0] == "*":
        labels = labels[1:]
    if any("*" in label for label in labels):
        rule = ("a wildcard must be the whole leftmost label, as in '*.example.com'" if wildcard
                else "it cannot hold a wildcard")
        raise ValueError(f"{what} {shown(name)} is not allowed: {rule}")
    for label in labels:
        if not label:
            raise ValueError(f"{what} {shown(name)} has an empty label")
        if not _LABEL.fullmatch(label):
            reason = ("a label is longer than 63 characters" if len(label) > 63 else
                      f"the label {shown(label)} is not letters, digits and inner hyphens")
            raise ValueError(f"{what} {shown(name)} is not a valid host name (RFC 1123): "
                             f"{reason}")
    if labels[-1].isdigit():
        raise ValueError(f"{what} {shown(name)} ends in a numeric label: it is neither a host "
                         "name nor a valid IP address")


def check_ip(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    if getattr(address, "scope_id", None):
        raise ValueError(f"IP address {shown(str(address))} has a zone, which a certificate "
                         "cannot carry")


def check_email(address: str) -> None:
    local, at, domain = address.rpartition("@")
    if not at or not local:
        raise ValueError(f"email address {shown(address)} is not local@domain")
    if not local.isascii():
        raise ValueError(f"email address {shown(address)} has a non-ASCII local part, which "
                         "an rfc822Name cannot carry")
    if len(local) > 64 or not _DOT_ATOM.fullmatch(local):
        raise ValueError(f"email address {shown(address)} has an invalid local part "
                         "(RFC 5322 dot-atom of at most 64 characters)")
    try:
        check_dns_name(domain, wildcard=False, what="its domain")
    except ValueError as exc:
        raise ValueError(f"email address {shown(address)}: {exc}") from None


def check_uri(uri: str) -> None:
    if not uri.isascii():
        raise ValueError(f"URI {shown(uri)} is not ASCII: percent-encode it (RFC 3986) and "
                         "write its host as an A-label")
    if not _URI_TEXT.fullmatch(uri):
        raise ValueError(f"URI {shown(uri)} holds characters a URI cannot (RFC 3986): spaces, "
                         "controls, or a '%' not followed by two hex digits")
    scheme, colon, _ = uri.partition(":")
    if not colon or not _SCHEME.fullmatch(scheme):
        raise ValueError(f"URI {shown(uri)} has no scheme")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises for a port that is not a number in range
    except ValueError as exc:
        raise ValueError(f"URI {shown(uri)} cannot be parsed: {exc}") from None


def check_common_name(name: str) -> None:
    if len(name) > MAX_COMMON_NAME:
        raise ValueError(f"common name {shown(name)} is longer than {MAX_COMMON_NAME} "
                         "characters (RFC 5280)")
    if name != name.strip():
        raise ValueError(f"common name {shown(name)} begins or ends with white space")
    if name.isascii() and name.isprintable():
        return  # the usual case, without a look-up per character
    hidden = next((c for c in name if unicodedata.category(c) in _HIDDEN_CATEGORIES), None)
    if hidden is not None:
        raise ValueError(f"common name {shown(name)} holds the control or invisible character "
                         f"U+{ord(hidden):04X}")


def check_sans(sans: SANs) -> None:
    for name in sans.dns:
        check_dns_name(name)
    for address in sans.ips:
        check_ip(address)
    for email in sans.emails:
        check_email(email)
    for uri in sans.uris:
        check_uri(uri)


def check_host_names(names: Iterable[str]) -> None:
    """Names a TLS server answers to (ca.json ``dnsNames``): DNS names and IP addresses."""
    for name in names:
        try:
            address = ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            check_dns_name(name)
        else:
            check_ip(address)


def _not_ascii(name: str, what: str) -> str:
    import idna  # only on this path: most names are ASCII

    wildcard, rest = ("*.", name[2:]) if name.startswith("*.") else ("", name)
    try:
        a_label = wildcard + idna.encode(rest, uts46=True).decode("ascii")
        check_dns_name(a_label)
    except (idna.IDNAError, UnicodeError, ValueError):
        return (f"{what} {shown(name)} is not ASCII, nor a valid internationalized domain name "
                "(IDNA 2008)")
    return f"{what} {shown(name)} is not ASCII: request its A-label {shown(a_label)} instead"
