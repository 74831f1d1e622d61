"""The client half of a provisioner plugin: how ``step ca token`` and ``step ca certificate``
obtain the credential of a provisioner type and turn it into a one-time token.

A plugin registers its client with the ``stepca_provisioner_clients`` hook as a
``ClientRegistration``: the ``type`` that ``/provisioners`` reports and a ``load`` callable that
imports the client class only when a provisioner of that type is used, so plugins add no import
cost to ``step --help``. The CLI chooses the provisioner, builds a ``TokenRequest`` from its
flags and calls ``client.token(request)``; JWK (``stepca_jwk.client``) works this way too.

A registration also declares the flags of ``step ca provisioner add --type <type>`` (and of
``update``) as ``ProvisionerOption``s: each names the ca.json key it writes, so adding a
provisioner of a new type needs no change to the CLI. What cannot be written as given (JWK's
``--create`` makes a key pair) is an option without a key, handed to the client's
``edit_entry``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal
from urllib.parse import quote

__all__ = ["INSTANCE_IDENTITY_OPTIONS", "ClientFlag", "ClientRegistration", "ProvisionerClient",
           "ProvisionerOption", "TokenRequest", "sign_audience"]

ClientFlag = Literal["key", "password-file", "provisioner-password-file", "console"]
"""The shared flags of ``step ca token``/``certificate`` whose meaning belongs to the provisioner
type; a flag given that the chosen type's client does not declare is refused with one line."""


@dataclass(frozen=True, kw_only=True)
class TokenRequest:
    """Everything the CLI knows when it needs a token; the client takes what its type needs.
    What a command was not given is None."""

    provisioner: Mapping[str, Any]
    """The provisioner's entry as ``/provisioners`` (or, offline, ca.json) lists it."""
    ca_url: str
    audience: str
    """The full URL the token is for, e.g. ``https://ca.internal:9000/1.0/sign``."""
    subject: str
    sans: list[str] | None
    """The names for the certificate (``[subject]`` when none were given); None for tokens that
    are not for ``/sign`` (``/revoke``), which carry no SANs."""
    command: str
    """The command path (``step ca certificate``), for prompts and messages."""
    not_before: str | None = None
    not_after: str | None = None
    """``--not-before``/``--not-after`` of the token, as given (a time or a duration)."""
    root_fingerprint: str | None = None
    kid: str | None = None
    """``--kid``: the key id the token names, where the type lets one choose it."""
    key_file: str | None = None
    password: bytes | None = None
    """The content of ``--provisioner-password-file`` (or ``--password-file``), if given."""
    password_flag: str = "provisioner-password-file"
    """The flag a client names when it has to prompt for a missing password."""
    console: bool = False
    """``--console``: complete a browser sign-in from the terminal (OIDC)."""
    fetch_json: Callable[[str], Any] | None = None
    """GET a path of the CA (``/provisioners/<kid>/encrypted-key``) and decode its JSON; None
    offline."""


class ProvisionerClient(abc.ABC):
    """Obtains a provisioner type's credential and returns a one-time token.

    Raise ``ValueError`` (or ``stepca_cli.errors.StepError``) with a one-line reason when the
    credential cannot be obtained; the CLI prints it and exits 1."""

    type: ClassVar[str]
    """The provisioner ``type`` this client serves, e.g. ``"JWK"`` (case-insensitive)."""

    flags: ClassVar[frozenset[ClientFlag]] = frozenset()
    """Which of the shared flags this type uses (see ``ClientFlag``)."""

    @abc.abstractmethod
    def token(self, request: TokenRequest) -> str:
        """The one-time token (a compact JWT) for ``request``."""

    def edit_entry(self, entry: dict[str, Any], inputs: Mapping[str, Any], *, adding: bool,
                   command: str) -> None:
        """Complete the provisioner's ca.json ``entry`` in place for ``step ca provisioner add``
        (``adding``) or ``update``. ``entry`` holds what the declared options wrote (for update,
        the entry as it was with the given changes); ``inputs`` the given values of this type's
        options without a key, by flag, checked as their kind says (for update, an empty text
        or file value is passed as ``""``: "remove it"). Raise ``ValueError`` with a one-line
        reason to refuse; nothing is written then. By default there is nothing to do."""

    def csr_sans(self, token: str, request: TokenRequest) -> list[str] | None:
        """The names ``step ca certificate`` puts in its request when given no ``--san``; None
        keeps ``[subject]``. step's cloud clients name what the instance identity vouches for,
        and the subject too unless the provisioner has ``disableCustomSANs``."""
        return None


def sign_audience(audience: str, fragment: str) -> str:
    """step-ca's audience for AWS and GCP identities: the sign URL with ``<type>/<name>`` in
    its fragment, escaped as Go's ``url.URL`` escapes a fragment (``Google Cloud`` becomes
    ``Google%20Cloud``), as smallstep's step sends it."""
    return f"{audience}#{quote(fragment, safe='$&+,/:;=?@!()*')}"


@dataclass(frozen=True)
class ProvisionerOption:
    """A flag of ``step ca provisioner add`` that writes one key of the provisioner's ca.json
    entry. ``kind`` says what the flag takes and what is written:

    - ``text``: one value, written as a string;
    - ``list``: the flag repeated, written as a list of strings;
    - ``duration``: one duration (``1h30m``), checked, written as given;
    - ``switch``: no value, writes ``true`` when given;
    - ``file``: a path, checked to be a readable file, written as an absolute path.

    ``step ca provisioner update`` sets what is given: a ``list`` flag adds to the list and
    ``--remove-<flag>`` takes values out of it, ``--<switch>=false`` turns a switch off and an
    empty value removes a key.
    """

    flag: str
    """The long flag without dashes, e.g. ``aws-account``."""
    key: str | None
    """The ca.json key it writes, e.g. ``accounts``; None for an input of the client's
    ``edit_entry`` (JWK's ``--public-key`` file becomes the ``key`` and ``kid``)."""
    kind: Literal["text", "list", "duration", "switch", "file"]
    help: str
    aliases: tuple[str, ...] = ()
    """Other long flags for the same option (``disable-tofu``)."""
    required: bool = False


INSTANCE_IDENTITY_OPTIONS: tuple[ProvisionerOption, ...] = (
    ProvisionerOption("instance-age", "instanceAge", "duration",
                      "The maximum age of an instance that may get its first certificate."),
    ProvisionerOption("disable-custom-sans", "disableCustomSANs", "switch",
                      "Only the names the cloud vouches for (internal DNS name, IP) go in "
                      "certificates; by default the CSR's."),
    ProvisionerOption("disable-trust-on-first-use", "disableTrustOnFirstUse", "switch",
                      "Allow more than one certificate per instance through /sign; by default "
                      "an instance gets one, then renews.", aliases=("disable-tofu",)),
)
"""The options step shares between its instance identity (cloud) provisioner types."""


@dataclass(frozen=True)
class ClientRegistration:
    """What ``stepca_provisioner_clients`` returns: a type and how to import its client."""

    type: str
    load: Callable[[], type[ProvisionerClient]]
    """Imports and returns the client class; called only when this type is used."""
    options: tuple[ProvisionerOption, ...] = ()
    """The flags of ``step ca provisioner add --type <type>`` and ``update``; with none, the
    type cannot be added from the command line."""
