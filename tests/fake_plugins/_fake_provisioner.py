"""A minimal provisioner class factory for the fake plugins: discovery needs classes, never
tokens."""

from __future__ import annotations

from stepca.errors import Unauthorized
from stepca.jose import Token
from stepca.provisioner import Provisioner, SignOptions


def provisioner_class(type_name: str) -> type[Provisioner]:
    class FakeProvisioner(Provisioner):
        type = type_name

        @staticmethod
        def token_lookup_key(token: Token) -> str | None:
            return None

        @property
        def lookup_keys(self) -> tuple[str, ...]:
            return ()

        def authorize_sign(self, token: Token) -> SignOptions:
            raise Unauthorized("fake provisioners authorize nothing")

    FakeProvisioner.__qualname__ = FakeProvisioner.__name__ = f"Fake{type_name.title()}"
    return FakeProvisioner
