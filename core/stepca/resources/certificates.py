"""Root, intermediate and federation certificates."""

from __future__ import annotations

import falcon

from stepca.authority import Authority
from stepca.errors import NotImplementedYet
from stepca.x509util import dump_chain, pem

PEM_BUNDLE = "application/x-pem-file"


class _Resource:
    def __init__(self, authority: Authority) -> None:
        self.authority = authority


class Root(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, sha: str) -> None:
        resp.media = {"ca": pem(self.authority.root(sha))}


class Roots(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.status = falcon.HTTP_201  # step-ca answers 201 here; clients only check >= 400
        resp.media = {"crts": [pem(c) for c in self.authority.roots]}


class RootsPEM(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = PEM_BUNDLE
        resp.data = dump_chain(self.authority.roots)


class Intermediates(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self.authority.intermediates:
            raise NotImplementedYet("this CA has no intermediate certificates")
        resp.status = falcon.HTTP_201
        resp.media = {"crts": [pem(c) for c in self.authority.intermediates]}


class IntermediatesPEM(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self.authority.intermediates:
            raise NotImplementedYet("this CA has no intermediate certificates")
        resp.content_type = PEM_BUNDLE
        resp.data = dump_chain(self.authority.intermediates)


class Federation(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.status = falcon.HTTP_201
        resp.media = {"crts": [pem(c) for c in self.authority.federation()]}
