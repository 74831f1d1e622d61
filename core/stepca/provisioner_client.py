"""The client half of a provisioner plugin: how ``step ca token`` and ``step ca certificate``
obtain the credential of a provisioner type and turn it into a one-time token.

A plugin registers its client with the ``stepca_provisioner_clients`` hook as a
``ClientRegistration``: the ``type`` that ``/provisioners`` reports and a ``load`` callable that
imports the client class only when a provisioner of that type is used, so plugins add no import
cost to ``step --help``. The CLI chooses the provisioner, builds a ``TokenRequest`` from its
flags and calls ``client.token(request)``; JWK (``stepca_jwk.client``) works this way too.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

__all__ = ["ClientFlag", "ClientRegistration", "ProvisionerClient", "TokenRequest"]

ClientFlag = Literal["key", "password-file", "provisioner-password-file"]
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


@dataclass(frozen=True)
class ClientRegistration:
    """What ``stepca_provisioner_clients`` returns: a type and how to import its client."""

    type: str
    load: Callable[[], type[ProvisionerClient]]
    """Imports and returns the client class; called only when this type is used."""
