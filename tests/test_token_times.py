"""The times of a token `step ca token` makes are taken together, when it is signed: a slow
password prompt between choosing the provisioner and signing cannot leave `iat` apart from
`nbf` (issue 12)."""

from __future__ import annotations

from datetime import timedelta

from stepca.jose import parse_unverified
from stepca.plugins import Plugins
from stepca.timeutil import utcnow
from stepca_cli import tokens


def test_iat_nbf_and_exp_come_from_the_moment_of_signing(stepca_pki, monkeypatch):
    start = utcnow()
    ticks = iter(range(1000))

    def slow_clock():  # each look at the clock is a minute later, as if a prompt waited
        return start + timedelta(minutes=next(ticks))

    monkeypatch.setattr(tokens, "utcnow", slow_clock)
    provisioners = stepca_pki.ca_json["authority"]["provisioners"]
    for not_before, not_after, lifetime in ((None, None, 300), ("1m", "11m", 600)):
        token = tokens.sign_token(
            None, ca_url="https://ca.example.com", subject="a.example.com", sans=[],
            provisioner=stepca_pki.provisioner_name, kid=None, key_file=None,
            password=stepca_pki.password, root_fingerprint=stepca_pki.fingerprint,
            not_before=not_before, not_after=not_after, command="step ca token",
            offline_provisioners=provisioners, plugins=Plugins.load(lazy=True)).token
        claims = parse_unverified(token).claims
        offset = 60 if not_before else 0
        assert claims["nbf"] == claims["iat"] + offset
        assert claims["exp"] == claims["nbf"] + lifetime
        assert claims["iat"] > int(start.timestamp())  # not the clock read before the prompt
