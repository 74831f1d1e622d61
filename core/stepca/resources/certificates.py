"""Root, intermediate and federation certificates."""

from __future__ import annotations

import falcon

from stepca.authority import Authority
from stepca.errors import NotImplementedYet
from stepca.resources import render_json
from stepca.x509util import dump_chain, pem

PEM_BUNDLE = "application/x-pem-file"


class _Resource:
    def __init__(self, authority: Authority) -> None:
        self.authority = authority


class Root(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, sha: str) -> None:
        render_json(resp, {"ca": pem(self.authority.root(sha))})


class Roots(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        # step-ca answers 201 here; clients only check >= 400
        render_json(resp, {"crts": [pem(c) for c in self.authority.roots]}, 201)


class RootsPEM(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = PEM_BUNDLE
        resp.data = dump_chain(self.authority.roots)


class Intermediates(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self.authority.intermediates:
            raise NotImplementedYet("this CA has no intermediate certificates")
        render_json(resp, {"crts": [pem(c) for c in self.authority.intermediates]}, 201)


class IntermediatesPEM(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self.authority.intermediates:
            raise NotImplementedYet("this CA has no intermediate certificates")
        resp.content_type = PEM_BUNDLE
        resp.data = dump_chain(self.authority.intermediates)


class Federation(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        render_json(resp, {"crts": [pem(c) for c in self.authority.federation()]}, 201)
