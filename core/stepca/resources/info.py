from __future__ import annotations

import falcon

from stepca.authority import Authority
from stepca.resources import render_json


class Health:
    """step-ca's ``{"status":"ok"}``, once the store and the signing key pass their checks;
    else the error that says which is broken (``stepca.health``)."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.authority.check_health()
        render_json(resp, {"status": "ok"})


class Version:
    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        render_json(resp, self.authority.version())
