"""The retention job: what the Authority records about a spent token id, the ca.json settings,
the background process that purges, and step-ca running it beside its workers."""

from __future__ import annotations

import base64
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from stepca.config import ConfigError
from stepca.errors import TokenAlreadyUsed
from stepca.jose import parse_unverified, sign_jwt
from stepca.provisioner import LEEWAY, token_id_expiry, token_id_of
from stepca.retention import (PROCESS_NAME, TOKEN_ID_GRACE, RetentionPolicy, RetentionProcess,
                              purge_once)
from stepca.store import Purged
from stepca.testing import make_csr, make_token
from stepca.testing.contracts import _leaf
from stepca.testing.process import wait_for
from stepca.timeutil import utcnow
from stepca_store_sqlite import SQLiteStore

REVOKE_AUDIENCE = "https://localhost:9000/1.0/revoke"


def _spent(database: str) -> dict[str, int | None]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        found = dict(conn.execute("SELECT id, expires_at FROM used_ott").fetchall())
    conn.close()
    return found


def test_the_authority_records_when_each_spent_id_may_be_forgotten(stepca_pki, stepca_ca):
    # /sign, /revoke and an x5c renewal each spend the token's own id until its exp + leeway
    now = utcnow().replace(microsecond=0)
    sign = make_token(stepca_pki, now=now, lifetime=timedelta(minutes=5))
    response = stepca_ca.sign(make_csr()[0], sign)
    assert response.status_code == 201, response.text
    chain = [x509.load_pem_x509_certificate(c.encode()) for c in response.json["certChain"]]
    serial = str(chain[0].serial_number)

    renew_key = make_csr()  # a second certificate, to renew with its own key
    issued = stepca_ca.sign(renew_key[0], make_token(stepca_pki, now=now))
    renew_chain = [x509.load_pem_x509_certificate(c.encode())
                   for c in issued.json["certChain"]]
    x5c = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
           for c in renew_chain]
    stamp = int(now.timestamp())
    renew = sign_jwt({"aud": "https://localhost:9000/1.0/renew", "iss": "step-ca-client/1.0",
                      "sub": "foo.example.com", "iat": stamp, "nbf": stamp, "exp": stamp + 120,
                      "jti": "renew-jti"}, renew_key[1], headers={"x5cInsecure": x5c})
    assert stepca_ca.client.simulate_post(
        "/1.0/renew", headers={"Authorization": f"Bearer {renew}"}).status_code == 201

    revoke = make_token(stepca_pki, serial, audience=REVOKE_AUDIENCE, now=now,
                        lifetime=timedelta(minutes=3))
    assert stepca_ca.client.simulate_post("/revoke", json={
        "serial": serial, "reasonCode": 1, "passive": True, "ott": revoke}).status_code == 200

    leeway = int(LEEWAY.total_seconds())
    spent = _spent(stepca_ca.authority.config.db["dataSource"])
    assert spent[token_id_of(parse_unverified(sign))] == stamp + 300 + leeway
    assert spent["renew-jti"] == stamp + 120 + leeway
    assert spent[token_id_of(parse_unverified(revoke))] == stamp + 180 + leeway
    assert len(spent) == 4  # and the second certificate's token

    # before those moments every id stays spent; after them (and the grace) they go
    store = stepca_ca.authority.certificates
    assert purge_once(store, RetentionPolicy(), now + TOKEN_ID_GRACE) == Purged()
    with pytest.raises(TokenAlreadyUsed):
        store.spend_token("renew-jti")
    later = now + timedelta(minutes=7) + TOKEN_ID_GRACE  # past exp + leeway (6 min)
    assert purge_once(store, RetentionPolicy(), later) == Purged(token_ids=4)


def test_an_id_that_is_not_the_tokens_own_is_kept_for_ever(stepca_pki):
    # trust on first use: AWS, GCP and Azure spend the instance's id, which outlives the token
    token = parse_unverified(make_token(stepca_pki))
    assert token_id_expiry(token, token_id_of(token)) == \
        datetime.fromtimestamp(token.claims["exp"], UTC) + LEEWAY
    assert token_id_expiry(token, "aws/instance-id-hash") is None
    assert token_id_expiry(token, None) is None
    no_exp = parse_unverified(make_token(stepca_pki, omit=["exp"]))
    assert token_id_expiry(no_exp, token_id_of(no_exp)) is None
    odd = parse_unverified(make_token(stepca_pki, exp="soon"))
    assert token_id_expiry(odd, token_id_of(odd)) is None


def test_retention_settings() -> None:
    assert RetentionPolicy.from_db_config(None) == RetentionPolicy(timedelta(hours=1), None)
    assert RetentionPolicy.from_db_config({"type": "sqlite"}) == RetentionPolicy()
    policy = RetentionPolicy.from_db_config({"retention": {
        "interval": "10m", "keepExpiredCertificates": "2160h"}})
    assert policy == RetentionPolicy(timedelta(minutes=10), timedelta(days=90))
    now = utcnow()
    assert policy.cutoffs(now) == (now - TOKEN_ID_GRACE, now - timedelta(days=90))
    assert RetentionPolicy().cutoffs(now) == (now - TOKEN_ID_GRACE, None)
    for bad, words in (({"retention": []}, "must be an object"),
                       ({"retention": {"keepExpired": "1h"}}, "unknown key(s) keepExpired"),
                       ({"retention": {"interval": "30s"}}, "at least 1m"),
                       ({"retention": {"interval": "often"}}, "db.retention.interval"),
                       ({"retention": {"keepExpiredCertificates": "-1h"}}, "negative")):
        with pytest.raises(ConfigError) as refused:
            RetentionPolicy.from_db_config(bad)
        assert words in str(refused.value)


def test_the_authority_refuses_bad_retention_settings(stepca_pki, tmp_path: Path) -> None:
    from stepca.testing import TestCA

    db = {"type": "sqlite", "dataSource": str(tmp_path / "db" / "stepca.db"),
          "retention": {"interval": "1s"}}
    with pytest.raises(ConfigError, match="db.retention.interval must be at least 1m"):
        TestCA(stepca_pki.config(tmp_path, db=db))


def test_the_store_is_closed_before_the_retention_process_forks(tmp_path: Path) -> None:
    # an open SQLite connection, or the thread checkpointing it, must not cross the fork: a
    # child that inherits one can wait forever on a lock that thread held
    closed_in: list[int] = []

    class Recording(SQLiteStore):
        def close(self) -> None:
            closed_in.append(os.getpid())
            super().close()

    store = Recording(tmp_path / "stepca.db")  # migrating it opened a connection
    job = RetentionProcess(store, RetentionPolicy(interval=timedelta(hours=1),
                                                  keep_expired_certificates=None))
    job.start()
    try:
        assert os.getpid() in closed_in
    finally:
        job.stop()


def test_the_retention_process_purges_at_once_then_every_interval(tmp_path: Path) -> None:
    path = tmp_path / "stepca.db"
    store = SQLiteStore(path)
    now = utcnow()
    long_ago = now - TOKEN_ID_GRACE - timedelta(minutes=1)
    store.spend_token("expired-1", token_expires_at=long_ago)
    store.spend_token("live", token_expires_at=now + timedelta(minutes=5))
    store.spend_token("first-use")
    old = _leaf(not_after=now - timedelta(days=100))
    store.store_certificate(old, provisioner=None, token_id=None)
    store.close()

    # the interval is below what ca.json allows, so the test sees a second run soon
    policy = RetentionPolicy(interval=timedelta(seconds=0.2),
                             keep_expired_certificates=timedelta(days=90))
    job = RetentionProcess(SQLiteStore(path), policy)
    job.start()
    try:
        wait_for(lambda: "expired-1" not in _spent(str(path)), "the first purge", timeout=30)
        store.spend_token("expired-2", token_expires_at=long_ago)
        wait_for(lambda: "expired-2" not in _spent(str(path)), "a later purge", timeout=30)
        assert set(_spent(str(path))) == {"live", "first-use"}
        assert store.get_certificate(old.serial_number) is None
        assert job.process is not None and job.process.is_alive()
    finally:
        job.stop()
    job.process.join(10)
    assert job.process.exitcode == 0
    store.close()


def test_step_ca_runs_the_retention_beside_its_workers(tmp_path: Path) -> None:
    from stepca.testing.http import running_ca

    database = tmp_path / "run" / "db" / "stepca.db"
    seeded = SQLiteStore(database)
    now = utcnow()
    seeded.spend_token("expired", token_expires_at=now - TOKEN_ID_GRACE - timedelta(minutes=1))
    seeded.spend_token("live", token_expires_at=now + timedelta(minutes=5))
    seeded.close()
    db = {"type": "sqlite", "dataSource": str(database), "retention": {"interval": "1h"}}
    with running_ca(tmp_path, ca_json={"db": db}) as ca:
        wait_for(lambda: "expired" not in _spent(str(database)), "the start-up purge",
                 timeout=30)
        assert set(_spent(str(database))) == {"live"}
        retention = ca.process.retention_pid()
        assert retention is not None and retention not in ca.process.pids()
        master, *workers = ca.process.pids()
        assert len(workers) == 1
        # the master, which forks, runs no thread; the purge is a process of its own
        assert len(os.listdir(f"/proc/{master}/task")) == 1
        assert Path(f"/proc/{retention}/comm").read_text().strip() == PROCESS_NAME
    assert not Path(f"/proc/{retention}").exists() or \
        Path(f"/proc/{retention}/stat").read_text().split()[2] == "Z"


def test_step_ca_refuses_a_database_from_a_newer_release_with_one_line(tmp_path: Path) -> None:
    import subprocess

    from stepca.sqlstore import LATEST_VERSION
    from stepca.testing import make_pki
    from stepca.testing.process import free_port, scripts_dir

    database = tmp_path / "run" / "db" / "stepca.db"
    SQLiteStore(database).close()
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE stepca_schema SET version = version + 1")
    conn.close()
    pki = make_pki(tmp_path / "pki")
    config = pki.config(tmp_path / "run", address=f"127.0.0.1:{free_port()}",
                        db={"type": "sqlite", "dataSource": str(database)})
    password = tmp_path / "password"
    password.write_bytes(pki.password)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
    result = subprocess.run([str(scripts_dir() / "step-ca"), str(config), "--password-file",
                             str(password)], env=env, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 1
    assert result.stderr == (
        f"Error: the database {database} has schema version {LATEST_VERSION + 1}, newer than "
        f"this stepca knows (at most {LATEST_VERSION}): it was written by a newer release; run that release, or restore a "
        "backup made for this one\n")
    assert result.stdout == ""
