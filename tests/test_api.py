"""The read-only routes, at /x and /1.0/x, with step-ca's fields and status codes."""

from __future__ import annotations

import json
import logging
import os
import re
import time

import pytest
from cryptography import x509

from stepca import __version__
from stepca.jose import decrypt_pbes2
from stepca.testing import TestCA
from stepca.testing.http import call_wsgi
from stepca.x509util import fingerprint


NOT_FOUND = ("The requested resource could not be found. Please see the certificate authority "
             "logs for more info.")


@pytest.fixture(params=["", "/1.0"])
def prefix(request):
    return request.param


def test_health_and_version(stepca_ca, prefix):
    assert stepca_ca.client.simulate_get(f"{prefix}/health").json == {"status": "ok"}
    assert stepca_ca.client.simulate_get(f"{prefix}/version").json == {"version": __version__}
    # step-ca's router answers HEAD, like any method a route lacks, with chi's bare 405
    assert call_wsgi(stepca_ca.client.app, "HEAD", f"{prefix}/health") == (
        405, {"content-length": "0"}, b"")


def test_root_by_fingerprint(stepca_pki, stepca_ca, prefix):
    fp = stepca_pki.fingerprint
    for variant in (fp, fp.upper()):
        response = stepca_ca.client.simulate_get(f"{prefix}/root/{variant}")
        assert response.status_code == 200
        assert fingerprint(x509.load_pem_x509_certificate(response.json["ca"].encode())) == fp
    missing = stepca_ca.client.simulate_get(f"{prefix}/root/{'0' * 64}")
    assert missing.status_code == 404
    assert missing.json == {"status": 404, "message": NOT_FOUND}


def test_roots_intermediates_federation(stepca_pki, stepca_ca, prefix):
    roots = stepca_ca.client.simulate_get(f"{prefix}/roots")
    assert roots.status_code == 201  # step-ca's odd but relied-upon status
    assert [fingerprint(x509.load_pem_x509_certificate(c.encode()))
            for c in roots.json["crts"]] == [stepca_pki.fingerprint]
    pem = stepca_ca.client.simulate_get(f"{prefix}/roots.pem")
    assert pem.status_code == 200 and pem.headers["content-type"] == "application/x-pem-file"
    assert x509.load_pem_x509_certificates(pem.content)[0] == stepca_pki.root
    inter = stepca_ca.client.simulate_get(f"{prefix}/intermediates")
    assert inter.status_code == 201
    cert = x509.load_pem_x509_certificate(inter.json["crts"][0].encode())
    assert cert.issuer == stepca_pki.root.subject
    inter_pem = stepca_ca.client.simulate_get(f"{prefix}/intermediates.pem")
    assert x509.load_pem_x509_certificates(inter_pem.content) == [cert]
    federation = stepca_ca.client.simulate_get(f"{prefix}/federation")
    assert federation.status_code == 201 and len(federation.json["crts"]) == 1


def test_federated_roots_are_served(stepca_pki, tmp_path):
    from stepca.testing import make_pki

    other = make_pki(tmp_path / "other", name="Other")
    config = stepca_pki.config(tmp_path, federatedRoots=[str(other.steppath / "certs" /
                                                             "root_ca.crt")])
    ca = TestCA(config)
    try:
        crts = ca.client.simulate_get("/federation").json["crts"]
        assert {fingerprint(x509.load_pem_x509_certificate(c.encode())) for c in crts} == {
            stepca_pki.fingerprint, other.fingerprint}
        assert ca.client.simulate_get(f"/root/{other.fingerprint}").status_code == 200
        assert len(ca.client.simulate_get("/roots").json["crts"]) == 1
    finally:
        ca.close()


def jwk_entry(pki, name: str) -> dict:
    entry = dict(pki.ca_json["authority"]["provisioners"][0])
    return {**entry, "name": name}


def test_provisioner_pages(stepca_pki, tmp_path, prefix):
    entries = [jwk_entry(stepca_pki, f"p{i}") for i in range(5)]
    ca = TestCA(stepca_pki.config(tmp_path, provisioners=entries))
    try:
        seen, cursor, pages = [], "", 0
        while True:
            page = ca.client.simulate_get(f"{prefix}/provisioners",
                                          params={"limit": "2", "cursor": cursor}).json
            seen += [p["name"] for p in page["provisioners"]]
            pages += 1
            cursor = page["nextCursor"]
            if not cursor:
                break
        assert seen == ["p0", "p1", "p2", "p3", "p4"] and pages == 3
        everything = ca.client.simulate_get(f"{prefix}/provisioners").json
        assert len(everything["provisioners"]) == 5 and everything["nextCursor"] == ""
        assert everything["provisioners"][0]["encryptedKey"] == entries[0]["encryptedKey"]
        for limit in ("0", "-3", "500"):
            assert len(ca.client.simulate_get("/provisioners",
                                              params={"limit": limit}).json["provisioners"]) == 5
        bad = ca.client.simulate_get("/provisioners", params={"limit": "ten"})
        assert bad.status_code == 400
        assert bad.json["message"] == ("The request could not be completed: limit 'ten' is not "
                                       "an integer.")
    finally:
        ca.close()


def test_encrypted_key(stepca_pki, stepca_ca, prefix):
    response = stepca_ca.client.simulate_get(
        f"{prefix}/provisioners/{stepca_pki.provisioner_kid}/encrypted-key")
    assert response.status_code == 200
    jwk = json.loads(decrypt_pbes2(response.json["key"], stepca_pki.password))
    assert jwk["kid"] == stepca_pki.provisioner_kid and "d" in jwk
    header = json.loads(__import__("base64").urlsafe_b64decode(
        response.json["key"].split(".")[0] + "=="))
    assert header["alg"] == "PBES2-HS256+A128KW" and header["enc"] == "A256GCM"
    assert header["p2c"] == 600000 and header["cty"] == "jwk+json"
    missing = stepca_ca.client.simulate_get(f"{prefix}/provisioners/nope/encrypted-key")
    assert missing.status_code == 404 and missing.json["message"] == NOT_FOUND


ACCESS_LINE = re.compile(
    r'(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO stepca\.access: 127\.0\.0\.1 '
    r'"(\w+) (\S+) HTTP/1\.1" (\d{3}) (\d+) \d+ms pid=(\d+) request_id=([0-9a-f]{20})\n')


def test_the_access_log_writes_one_line_per_request(stepca_ca, capsys):
    from falcon import testing

    from stepca.app import create_app

    client = testing.TestClient(create_app(stepca_ca.authority, access_log=True))
    logger = logging.getLogger("stepca.access")
    logger.setLevel(logging.INFO)  # step-ca's configure_logging sets INFO on the root
    before = time.time()
    try:
        client.simulate_get("/health")
        client.simulate_get("/1.0/root/00ff")
    finally:
        logger.setLevel(logging.NOTSET)
    after = time.time()
    lines = capsys.readouterr().err.splitlines(keepends=True)
    assert len(lines) == 2, lines
    health, missing = (ACCESS_LINE.fullmatch(line) for line in lines)
    assert health and missing, lines
    assert health.group(3, 4, 5) == ("GET", "/health", "200")
    assert int(health.group(6)) == len(b'{"status":"ok"}\n')
    assert missing.group(3, 4, 5) == ("GET", "/1.0/root/00ff", "404")
    assert int(health.group(7)) == os.getpid()
    # the same date and time as logging's own "%(asctime)s" of that moment
    stamp = time.mktime(time.strptime(health.group(1), "%Y-%m-%d %H:%M:%S"))
    assert int(before) <= stamp + int(health.group(2)) / 1000 <= after + 0.001


def test_the_access_log_is_silenced_by_its_loggers_level(stepca_ca, capsys):
    from falcon import testing

    from stepca.app import create_app

    client = testing.TestClient(create_app(stepca_ca.authority, access_log=True))
    logger = logging.getLogger("stepca.access")
    logger.setLevel(logging.WARNING)
    try:
        client.simulate_get("/health")
    finally:
        logger.setLevel(logging.NOTSET)
    assert capsys.readouterr().err == ""
