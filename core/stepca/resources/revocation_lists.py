"""``GET /crl`` and the OCSP responder (``GET /ocsp/{request}``, ``POST /ocsp``)."""

from __future__ import annotations

import base64
import binascii
from email.utils import format_datetime

import falcon
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from stepca.authority import Authority
from stepca.errors import BadRequest, PayloadTooLarge

MAX_OCSP_REQUEST = 8 * 1024
MAX_OCSP_REQUEST_BASE64 = 4 * -(-MAX_OCSP_REQUEST // 3)


class CRL:
    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        crl = self.authority.crl()
        resp.set_header("Expires", format_datetime(crl.next_update, usegmt=True))
        if "pem" in req.params:
            resp.content_type = "application/x-pem-file"
            resp.downloadable_as = "crl.pem"
            resp.data = x509.load_der_x509_crl(crl.der).public_bytes(serialization.Encoding.PEM)
        else:
            resp.content_type = "application/pkix-crl"
            resp.downloadable_as = "crl.crl"
            resp.data = crl.der


class OCSP:
    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def _answer(self, resp: falcon.Response, request_der: bytes) -> None:
        resp.content_type = "application/ocsp-response"
        resp.data = self.authority.ocsp(request_der)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = req.bounded_stream.read(MAX_OCSP_REQUEST + 1)
        if len(body) > MAX_OCSP_REQUEST:
            raise PayloadTooLarge(f"an OCSP request is at most {MAX_OCSP_REQUEST} bytes")
        self._answer(resp, body)

    def on_get_request(self, req: falcon.Request, resp: falcon.Response, **_: str) -> None:
        # RFC 6960 appendix A.1: the DER request, base64 then URL-encoded, after "/ocsp/".
        if req.method != "GET":
            raise falcon.HTTPMethodNotAllowed(["GET"])
        # PATH_INFO, not req.path: Falcon strips a trailing "/", which base64 may end with.
        encoded = req.env.get("PATH_INFO", req.path).split("/ocsp/", 1)[1]
        if len(encoded) > MAX_OCSP_REQUEST_BASE64:
            raise falcon.HTTPUriTooLong(description=f"an OCSP request is at most "
                                        f"{MAX_OCSP_REQUEST} bytes: POST a larger one")
        try:
            der = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error):
            raise BadRequest("the OCSP request is not base64") from None
        self._answer(resp, der)
