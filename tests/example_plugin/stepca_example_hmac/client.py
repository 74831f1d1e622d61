"""The client side of HMAC provisioners: ``step ca token`` and ``step ca certificate`` sign the
token with the shared secret read from ``--provisioner-password-file`` (the file ``step hmac
token`` reads with ``--secret-file``)."""

from __future__ import annotations

import secrets
from typing import ClassVar

from stepca.provisioner_client import ClientFlag, ProvisionerClient, TokenRequest
from stepca.timeutil import utcnow
from stepca_cli.tokens import token_window
from stepca_example_hmac.provisioner import decode_secret, sign_token


class HMACClient(ProvisionerClient):
    type = "HMAC"
    flags: ClassVar[frozenset[ClientFlag]] = frozenset({"provisioner-password-file"})

    def token(self, request: TokenRequest) -> str:
        if request.password is None:
            raise ValueError("an HMAC provisioner's token needs its shared secret: use "
                             "--provisioner-password-file")
        secret = decode_secret(request.password.decode("utf-8", "replace"))
        now = utcnow()
        not_before, expires = token_window(request.not_before, request.not_after, now)
        claims = {"iss": str(request.provisioner["name"]), "sub": request.subject,
                  "aud": request.audience, "iat": int(now.timestamp()),
                  "nbf": int(not_before.timestamp()), "exp": int(expires.timestamp()),
                  "jti": secrets.token_hex(32)}
        if request.sans is not None:
            claims["sans"] = request.sans
        return sign_token(claims, secret)
