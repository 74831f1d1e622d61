from __future__ import annotations

import falcon

from stepca.authority import Authority
from stepca.resources import render_json


class Health:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        render_json(resp, {"status": "ok"})


class Version:
    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        render_json(resp, self.authority.version())
