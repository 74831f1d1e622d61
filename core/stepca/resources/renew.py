"""Renewal and rekey: authenticated by the client certificate of the TLS connection (mutual
TLS) or, for renewal, by a Bearer token signed with the certificate's own key."""

from __future__ import annotations

import falcon
from cryptography import x509

from stepca.authority import Authority
from stepca.errors import BadRequest
from stepca.resources import optional_str, read_json, render_json
from stepca.resources.sign import render_chain


def peer_certificate(req: falcon.Request) -> x509.Certificate | None:
    """The client certificate the TLS handshake verified, if any.

    gunicorn puts the accepted socket in the WSGI environ as ``gunicorn.socket``; with our
    CERT_OPTIONAL context a certificate is only there if it verified against the CA's roots."""
    sock = req.env.get("gunicorn.socket")
    getpeercert = getattr(sock, "getpeercert", None)
    if getpeercert is None:
        return None
    der = getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der) if der else None


def bearer_token(req: falcon.Request) -> str | None:
    header = req.get_header("Authorization") or ""
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


class Renew:
    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        peer = peer_certificate(req)
        if peer is not None:
            result = self.authority.renew(peer)
        elif (token := bearer_token(req)) is not None:
            result = self.authority.renew_with_token(token)
        else:
            raise BadRequest("missing client certificate")
        render_json(resp, render_chain(result, self.authority.config.tls.to_json()), 201)


class Rekey:
    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        peer = peer_certificate(req)
        if peer is None:
            raise BadRequest("missing client certificate")
        body = read_json(req)
        result = self.authority.rekey(peer, optional_str(body, "csr") or "")
        render_json(resp, render_chain(result, self.authority.config.tls.to_json()), 201)
