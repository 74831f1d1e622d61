"""Returns something that is not a KeyStore subclass from a registration hook."""

from __future__ import annotations

from stepca import hookimpl


@hookimpl
def stepca_key_stores() -> list[object]:
    return ["vaultkms"]
