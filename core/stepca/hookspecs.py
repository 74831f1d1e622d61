"""Hook specifications for stepca plugins.

Implement them with ``@stepca.hookimpl`` in a module named by an entry point of the group
``stepca.plugins``. An implementation may accept any subset of a hook's arguments (never give
them defaults). Hooks are always called with keyword arguments.

Three families:

* registrations (collect-all) return classes; the core indexes them by their ``type``;
* decisions (``firstresult``) return a refusal reason to veto, or None to abstain;
* events (collect-all) observe what happened and return nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from stepca import PROJECT

if TYPE_CHECKING:
    import click
    from cryptography import x509

    from stepca.keystore import KeyStore
    from stepca.provisioner import Provisioner, SignOptions
    from stepca.provisioner_client import ClientRegistration
    from stepca.store import CertificateStore, RevocationStore

hookspec = pluggy.HookspecMarker(PROJECT)


# -- registrations ---------------------------------------------------------------------------------

@hookspec
def stepca_provisioner_types() -> list[type[Provisioner]]:
    """Return ``Provisioner`` subclasses; ca.json's provisioner ``type`` selects one.

    Two plugins returning classes with the same ``type`` make the CA refuse to start."""


@hookspec
def stepca_key_stores() -> list[type[KeyStore]]:
    """Return ``KeyStore`` subclasses; ca.json's ``kms.type`` selects one (``softkms`` default)."""


@hookspec
def stepca_certificate_stores() -> list[type[CertificateStore]]:
    """Return ``CertificateStore`` subclasses; ca.json's ``db.type`` selects one."""


@hookspec
def stepca_revocation_stores() -> list[type[RevocationStore]]:
    """Return ``RevocationStore`` subclasses; ca.json's ``db.type`` selects one."""


@hookspec
def stepca_provisioner_clients() -> list[ClientRegistration]:
    """Return ``ClientRegistration``s: the client side of provisioner types, with which
    ``step ca token`` and ``step ca certificate`` obtain a token from a provisioner whose
    ``/provisioners`` ``type`` matches. ``load`` imports the client only when it is used;
    ``options`` are the flags of ``step ca provisioner add`` for the type."""


@hookspec
def stepca_cli_commands(cli: click.Group) -> None:
    """Add click commands or groups to the ``step`` command line, as top-level commands.

    Called only when ``step`` needs every command name (``step --help``, an unknown name); a
    name ``step`` already has is ignored.

    :param cli: a group whose commands ``step`` adds; call ``cli.add_command(...)``."""


# -- decisions: first non-None result wins ---------------------------------------------------------

@hookspec(firstresult=True)
def stepca_authorize_sign(csr: x509.CertificateSigningRequest, options: SignOptions,
                          provisioner: Provisioner) -> str | None:
    """May this certificate be issued? Return a reason to refuse (HTTP 403), or None.

    Called after the provisioner authorized the request, before anything is signed or stored.
    Stops at the first non-None result."""


@hookspec(firstresult=True)
def stepca_authorize_renew(certificate: x509.Certificate,
                           provisioner: Provisioner | None) -> str | None:
    """May ``certificate`` be renewed? Return a reason to refuse (HTTP 401), or None.

    Stops at the first non-None result."""


@hookspec(firstresult=True)
def stepca_authorize_revoke(serial: int, reason_code: int,
                            provisioner: Provisioner | None) -> str | None:
    """May the certificate with ``serial`` be revoked? Return a reason to refuse (HTTP 403).

    Stops at the first non-None result."""


# -- events ----------------------------------------------------------------------------------------

@hookspec
def stepca_after_sign(certificate: x509.Certificate, provisioner: Provisioner) -> None:
    """A certificate was issued and stored."""


@hookspec
def stepca_after_renew(old: x509.Certificate, new: x509.Certificate,
                       provisioner: Provisioner | None) -> None:
    """A certificate was renewed (or rekeyed) and the new one stored."""


@hookspec
def stepca_after_revoke(serial: int, reason_code: int, reason: str,
                        provisioner: Provisioner | None) -> None:
    """A certificate was revoked."""
