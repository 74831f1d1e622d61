from __future__ import annotations

import falcon

from stepca.authority import Authority
from stepca.errors import BadRequest
from stepca.resources import optional_str, read_json, render_json
from stepca.resources.renew import peer_certificate


class Revoke:
    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req)
        reason_code = body.get("reasonCode")
        if reason_code is None:
            reason_code = 0
        elif isinstance(reason_code, bool) or not isinstance(reason_code, int):
            raise BadRequest("error decoding json")  # as Go's decoder, into an int field
        if body.get("passive") is False:
            # Revocation here is always recorded and published (CRL, OCSP) at once.
            raise BadRequest("passive must be true or absent: revocation is recorded once and "
                             "published through the CRL and OCSP")
        self.authority.revoke(serial=optional_str(body, "serial") or "",
                              reason_code=reason_code, reason=optional_str(body, "reason") or "",
                              ott=optional_str(body, "ott"), peer=peer_certificate(req))
        render_json(resp, {"status": "ok"})
