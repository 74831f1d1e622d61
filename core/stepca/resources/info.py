from __future__ import annotations

import falcon

from stepca.authority import Authority


class Health:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


class Version:
    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.authority.version()
