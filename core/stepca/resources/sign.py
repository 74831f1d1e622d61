from __future__ import annotations

import functools

import falcon
from cryptography import x509

from stepca.authority import Authority, SignResult
from stepca.resources import optional_str, read_json, render_json
from stepca.x509util import pem


@functools.lru_cache(maxsize=32)
def _issuer_pem(cert: x509.Certificate) -> str:
    return pem(cert)  # the same intermediates follow every certificate issued


def render_chain(result: SignResult, tls_options: dict[str, object]) -> dict[str, object]:
    chain = [pem(result.chain[0]), *(_issuer_pem(c) for c in result.chain[1:])]
    return {"crt": chain[0], "ca": chain[1] if len(chain) > 1 else None, "certChain": chain,
            "tlsOptions": tls_options}


class Sign:
    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req)
        result = self.authority.sign(
            csr_pem=optional_str(body, "csr") or "", ott=optional_str(body, "ott") or "",
            not_before=optional_str(body, "notBefore"), not_after=optional_str(body, "notAfter"))
        render_json(resp, render_chain(result, self.authority.config.tls.to_json()), 201)
