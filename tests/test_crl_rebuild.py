"""The CRL never misses a committed revocation: the CA rebuilds it at start-up unless the
stored one is current, and on `GET /crl` whenever a revocation was recorded after the stored
CRL was built (the revocation mark, not a timestamp: both have whole seconds). The crash is
simulated by a plugin that stops the request right after the revocation's commit, before its
rebuild."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509

from stepca import hookimpl
from stepca.testing import TestCA, make_csr, make_token

CRL = {"enabled": True, "generateOnRevoke": True, "cacheDuration": "24h"}


class Crash(BaseException):
    """The process dying: not an Exception, so nothing on the way turns it into a response."""


class CrashAfterRevocation:
    """Dies where a real process could: after the revocation was committed, before the CRL was
    rebuilt (stepca_after_revoke runs between the two)."""

    @hookimpl
    def stepca_after_revoke(self, serial):
        raise Crash(serial)


def issue(ca, pki):
    response = ca.sign(make_csr()[0], make_token(pki))
    assert response.status_code == 201, response.text
    return x509.load_pem_x509_certificate(response.json["crt"].encode())


def revoke_and_crash(ca, pki, serial: int) -> None:
    with pytest.raises(Crash):
        ca.client.simulate_post("/revoke", json={
            "serial": str(serial), "reasonCode": 1, "passive": True,
            "ott": make_token(pki, str(serial), audience="https://localhost:9000/1.0/revoke")})
    assert ca.authority.revocations.is_revoked(serial)  # committed
    # the request's log fields ended with it, though its process_response never ran
    from stepca.logs import request_fields

    assert request_fields() is None


def listed(crl_der: bytes, serial: int) -> bool:
    return x509.load_der_x509_crl(crl_der).get_revoked_certificate_by_serial_number(serial) \
        is not None


def number(crl_der: bytes) -> int:
    crl = x509.load_der_x509_crl(crl_der)
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_a_revocation_cut_off_from_its_crl_is_listed_after_a_restart(stepca_pki, tmp_path):
    config = stepca_pki.config(tmp_path, crl=CRL)
    ca = TestCA(config, plugins=[CrashAfterRevocation()])
    leaf = issue(ca, stepca_pki)
    revoke_and_crash(ca, stepca_pki, leaf.serial_number)
    stale = ca.authority.revocations.current_crl()
    assert not listed(stale.der, leaf.serial_number)  # what the crash left behind
    ca.close()

    restarted = TestCA(config)
    try:
        rebuilt = restarted.authority.revocations.current_crl()  # before any request
        assert rebuilt.number == stale.number + 1
        assert listed(rebuilt.der, leaf.serial_number)
        served = restarted.client.simulate_get("/crl")
        assert listed(served.content, leaf.serial_number)
        assert number(served.content) == rebuilt.number  # nothing new: no needless signature
    finally:
        restarted.close()


def test_a_revocation_cut_off_from_its_crl_is_listed_at_the_next_get(stepca_pki, tmp_path):
    ca = TestCA(stepca_pki.config(tmp_path, crl=CRL), plugins=[CrashAfterRevocation()])
    try:
        leaf = issue(ca, stepca_pki)
        before = ca.client.simulate_get("/crl").content
        revoke_and_crash(ca, stepca_pki, leaf.serial_number)
        # the same process, well within renewPeriod (16h): only the revocation mark tells
        assert not listed(ca.authority.revocations.current_crl().der, leaf.serial_number)
        served = ca.client.simulate_get("/crl").content
        assert listed(served, leaf.serial_number)
        assert number(served) == number(before) + 1
        assert ca.client.simulate_get("/crl").content == served  # rebuilt once, not per request
    finally:
        ca.close()


def test_without_generate_on_revoke_the_next_get_lists_the_revocation(stepca_pki, tmp_path):
    ca = TestCA(stepca_pki.config(tmp_path, crl={**CRL, "generateOnRevoke": False}))
    try:
        leaf = issue(ca, stepca_pki)
        before = number(ca.client.simulate_get("/crl").content)
        response = ca.client.simulate_post("/revoke", json={
            "serial": str(leaf.serial_number), "reasonCode": 4, "passive": True,
            "ott": make_token(stepca_pki, str(leaf.serial_number),
                              audience="https://localhost:9000/1.0/revoke")})
        assert response.status_code == 200, response.text
        assert ca.authority.revocations.current_crl().number == before  # not rebuilt on revoke
        served = ca.client.simulate_get("/crl").content
        assert listed(served, leaf.serial_number) and number(served) == before + 1
    finally:
        ca.close()


def start_and_read_crl(config, **kwargs):
    ca = TestCA(config, **kwargs)
    try:
        return ca.authority.revocations.current_crl()
    finally:
        ca.close()


def test_a_start_keeps_a_current_crl(stepca_pki, tmp_path):
    """step-ca signs a new CRL at every start; with 100,000 revocations that costs a second and
    more per start (docs/decisions/0042), so a current one is kept."""
    config = stepca_pki.config(tmp_path, crl=CRL)
    first = start_and_read_crl(config)
    again = start_and_read_crl(config)
    assert again == first


def test_a_start_rebuilds_a_crl_past_its_renew_period(stepca_pki, tmp_path):
    from stepca.timeutil import utcnow

    config = stepca_pki.config(tmp_path, crl=CRL)
    first = start_and_read_crl(config)
    later = start_and_read_crl(config, clock=lambda: utcnow() + timedelta(hours=17))  # 16h
    assert later.number == first.number + 1


@pytest.mark.parametrize("change", [{"idpURL": "https://crl.example.com/1.0/crl"},
                                    {"cacheDuration": "48h"}])
def test_a_start_rebuilds_a_crl_signed_for_another_configuration(stepca_pki, tmp_path, change):
    first = start_and_read_crl(stepca_pki.config(tmp_path, crl=CRL))
    rebuilt = start_and_read_crl(stepca_pki.config(tmp_path, crl={**CRL, **change}))
    assert rebuilt.number == first.number + 1
    crl = x509.load_der_x509_crl(rebuilt.der)
    if "idpURL" in change:
        point = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
        assert point.full_name[0].value == change["idpURL"]
    else:
        assert crl.next_update_utc - crl.last_update_utc == timedelta(hours=48)


def test_a_start_rebuilds_a_crl_another_intermediate_signed(stepca_pki, tmp_path):
    """The same database under another PKI (an intermediate rotated, say)."""
    from stepca.testing import make_pki

    db = {"type": "sqlite", "dataSource": str(tmp_path / "db" / "stepca.db")}
    first = start_and_read_crl(stepca_pki.config(tmp_path / "a", db=db, crl=CRL))
    other = make_pki(tmp_path / "other-pki")
    rebuilt = start_and_read_crl(other.config(tmp_path / "b", db=db, crl=CRL))
    assert rebuilt.number == first.number + 1
    intermediate = x509.load_pem_x509_certificate(
        (other.steppath / "certs" / "intermediate_ca.crt").read_bytes())
    assert x509.load_der_x509_crl(rebuilt.der).is_signature_valid(intermediate.public_key())


def test_a_start_rebuilds_a_crl_without_a_revocation_mark(stepca_pki, tmp_path):
    """A CRL stored without its mark (by a release before the mark) may miss a revocation."""
    import sqlite3

    config = stepca_pki.config(tmp_path, crl=CRL)
    first = start_and_read_crl(config)
    with sqlite3.connect(tmp_path / "db" / "stepca.db") as conn:
        conn.execute("UPDATE x509_crl SET revocation_mark = NULL")
    conn.close()
    assert start_and_read_crl(config).number == first.number + 1


def test_a_revocation_whose_crl_rebuild_finds_the_database_away_still_succeeds(
        stepca_pki, tmp_path, monkeypatch):
    """The database went away between the revocation's commit and its CRL rebuild: the
    revocation stands, so the client hears it succeeded (a 503 would make it retry into
    "already revoked"), and the next GET /crl lists it."""
    from stepca.store import StoreUnavailable

    ca = TestCA(stepca_pki.config(tmp_path, crl=CRL))
    leaf = issue(ca, stepca_pki)
    store = ca.authority.revocations

    def away(build):
        raise StoreUnavailable()

    monkeypatch.setattr(store, "next_crl", away)
    response = ca.client.simulate_post("/revoke", json={
        "serial": str(leaf.serial_number), "reasonCode": 1, "passive": True,
        "ott": make_token(stepca_pki, str(leaf.serial_number),
                          audience="https://localhost:9000/1.0/revoke")})
    assert response.status_code == 200, response.text
    monkeypatch.undo()
    crl = ca.client.simulate_get("/crl")
    assert crl.status_code == 200 and listed(crl.content, leaf.serial_number)


class RevokeAnotherAndServeTheCRL:
    """Between a revocation's commit and its rebuild, another revocation commits and a
    GET /crl rebuilds the CRL with both: what a burst of revocations in several processes
    looks like to the first of them."""

    def __init__(self):
        self.ca, self.other, self.served = None, None, None

    @hookimpl
    def stepca_after_revoke(self, serial):
        if self.other is None or serial == self.other.serial:
            return
        other, self.other = self.other, None
        self.ca.authority.revocations.revoke(other)
        self.served = self.ca.authority.crl()


def test_a_revocation_already_listed_by_a_newer_crl_signs_none(stepca_pki, tmp_path):
    from stepca.store import RevocationInfo
    from stepca.timeutil import utcnow

    plugin = RevokeAnotherAndServeTheCRL()
    ca = TestCA(stepca_pki.config(tmp_path, crl=CRL), plugins=[plugin])
    plugin.ca = ca
    try:
        first, second = issue(ca, stepca_pki), issue(ca, stepca_pki)
        plugin.other = RevocationInfo(second.serial_number, "", 4, "", utcnow().replace(
            microsecond=0), second.not_valid_after_utc, None)
        response = ca.client.simulate_post("/revoke", json={
            "serial": str(first.serial_number), "reasonCode": 1, "passive": True,
            "ott": make_token(stepca_pki, str(first.serial_number),
                              audience="https://localhost:9000/1.0/revoke")})
        assert response.status_code == 200, response.text
        stored = ca.authority.revocations.current_crl()
        assert stored == plugin.served  # the first revocation's rebuild signed nothing
        assert listed(stored.der, first.serial_number)
        assert listed(stored.der, second.serial_number)
    finally:
        ca.close()
