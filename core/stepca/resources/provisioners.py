from __future__ import annotations

import falcon

from stepca.authority import Authority
from stepca.resources import render_json


class Provisioners:
    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        page, next_cursor = self.authority.provisioner_page(
            req.get_param("cursor") or "", req.get_param("limit"))
        render_json(resp, {"provisioners": page, "nextCursor": next_cursor})


class EncryptedKey:
    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def on_get(self, req: falcon.Request, resp: falcon.Response, kid: str) -> None:
        render_json(resp, {"key": self.authority.encrypted_key(kid)})
