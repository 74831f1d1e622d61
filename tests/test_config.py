"""ca.json problems are reported clearly, before anything starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from stepca import hookimpl
from stepca.config import Config, ConfigError
from stepca.provisioner import Provisioner
from stepca.testing import TestCA


def build(pki, tmp_path, **overrides):
    return TestCA(pki.config(tmp_path, **overrides))


def test_smallstep_badger_db_is_named(stepca_pki, tmp_path):
    # the message names every store type installed (here the in-tree plugins' too)
    with pytest.raises(ConfigError, match=r"db.type 'badgerv2' is not provided by any installed "
                                          r"plugin \(installed: memory, postgresql, sqlite\)"):
        build(stepca_pki, tmp_path, db={"type": "badgerv2", "dataSource": str(tmp_path)})


def test_unknown_provisioner_type(stepca_pki, tmp_path):
    # a type no plugin of this project provides (OIDC, AWS, ... all have theirs now)
    with pytest.raises(ConfigError, match=r"provisioner 'acme' has type 'ACME', which no "
                                          r"installed plugin provides .*pip install stepca-acme"):
        build(stepca_pki, tmp_path, provisioners=[{"type": "ACME", "name": "acme"}])


def test_duplicate_provisioner_names(stepca_pki, tmp_path):
    entry = stepca_pki.ca_json["authority"]["provisioners"][0]
    with pytest.raises(ConfigError, match="provisioner name 'admin' is used twice"):
        build(stepca_pki, tmp_path, provisioners=[entry, entry])


def test_invalid_claims(stepca_pki, tmp_path):
    entry = {**stepca_pki.ca_json["authority"]["provisioners"][0],
             "claims": {"minTLSCertDuration": "2h", "maxTLSCertDuration": "1h"}}
    with pytest.raises(ConfigError, match="maxTLSCertDuration cannot be less than"):
        build(stepca_pki, tmp_path, provisioners=[entry])


def test_private_key_in_provisioner_is_refused(stepca_pki, tmp_path):
    from stepca.jose import jwk_from_key

    entry = {**stepca_pki.ca_json["authority"]["provisioners"][0],
             "key": jwk_from_key(stepca_pki.provisioner_key, private=True)}
    with pytest.raises(ConfigError, match="'key' must be a public key"):
        build(stepca_pki, tmp_path, provisioners=[entry])


def test_wrong_intermediate_password(stepca_pki, tmp_path):
    with pytest.raises(ConfigError, match="could not decrypt the key: wrong password"):
        TestCA(stepca_pki.config(tmp_path), password=b"wrong")


def test_key_must_match_certificate(stepca_pki, tmp_path):
    root_key = str(stepca_pki.steppath / "secrets" / "root_ca_key")
    with pytest.raises(ConfigError, match="'key' does not belong to the certificate in 'crt'"):
        build(stepca_pki, tmp_path, key=root_key)


@pytest.mark.parametrize(("change", "message"), [
    ({"address": "nonsense"}, "invalid address 'nonsense'"),
    ({"root": None}, "'root' is required"),
    ({"tls": {"minVersion": 1.3, "maxVersion": 1.2}}, "minVersion cannot exceed maxVersion"),
    ({"crt": "/nonexistent/crt.pem"}, "does not exist"),
])
def test_field_errors(stepca_pki, tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        build(stepca_pki, tmp_path, **change)


def test_a_ca_json_without_authority_is_refused_in_one_line(stepca_pki, tmp_path):
    from stepca.testing.process import scripts_dir

    path = stepca_pki.config(tmp_path)
    raw = json.loads(path.read_text())
    for absent in ({k: v for k, v in raw.items() if k != "authority"}, {**raw, "authority": None}):
        path.write_text(json.dumps(absent))
        with pytest.raises(ConfigError, match="'authority' is required"):
            Config.load(path)
    result = subprocess.run([str(scripts_dir() / "step-ca"), str(path)], capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert result.stderr == ("Error: ca.json: 'authority' is required: the block that lists the "
                             "provisioners\n")
    path.write_text(json.dumps({**raw, "authority": {}}))  # present but empty: as step-ca
    assert Config.load(path).provisioners == []


def test_unreadable_json(tmp_path):
    path = tmp_path / "ca.json"
    path.write_text("{ nope")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        Config.load(path)
    with pytest.raises(ConfigError, match="does not exist"):
        Config.load(tmp_path / "missing.json")


def test_step_ca_reports_config_errors(stepca_pki, tmp_path):
    from stepca.testing.process import scripts_dir

    config = stepca_pki.config(tmp_path, db={"type": "badgerv2", "dataSource": str(tmp_path)})
    password = tmp_path / "pw"
    password.write_bytes(stepca_pki.password)
    result = subprocess.run([str(scripts_dir() / "step-ca"), str(config), "--password-file",
                             str(password)], capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert "db.type 'badgerv2' is not provided by any installed plugin" in result.stderr
    assert "Traceback" not in result.stderr
    no_password = subprocess.run([str(scripts_dir() / "step-ca"), str(stepca_pki.config(
        tmp_path / "b"))], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert no_password.returncode == 1
    assert "the intermediate key is encrypted: pass --password-file" in no_password.stderr
    assert json.loads(config.read_text())["db"]["type"] == "badgerv2"


@pytest.mark.parametrize("server, message", [
    ({"keepAlive": 0}, "keepAlive, headerTimeout and requestTimeout must be between 1 and 300"),
    ({"requestTimeout": 301}, "keepAlive, headerTimeout and requestTimeout must be between 1"),
    ({"headerTimeout": 0}, "keepAlive, headerTimeout and requestTimeout must be between 1"),
    ({"workers": "many"}, "server: workers must be a whole number"),
    ({"keepAlive": True}, "server: keepAlive must be a whole number"),
    ({"maxRequestBytes": 10}, "maxRequestBytes must be between 1 KiB and 16 MiB"),
    ({"maxHeaderBytes": 2 * 1024 * 1024}, "maxHeaderBytes between 1 KiB and 1 MiB"),
    ({"maxConnections": 0}, "server: maxConnections must be at least 1"),
    ({"maxConnectionsPerClient": -1}, "server: maxConnectionsPerClient must be at least 1"),
    ({"accesslog": "-"}, "server: unknown setting 'accesslog'"),
    ([], "server must be an object"),
])
def test_server_block_is_checked(stepca_pki, tmp_path, server, message):
    with pytest.raises(ConfigError, match=message):
        Config.load(stepca_pki.config(tmp_path, server=server))


def test_server_block_defaults_and_values(stepca_pki, tmp_path):
    from stepca.httpserver import Limits, connection_capacity
    from stepca.server import http_limits

    defaults = Config.load(stepca_pki.config(tmp_path / "a")).server
    assert (defaults.keep_alive, defaults.header_timeout, defaults.request_timeout) == (5, 10, 30)
    assert (defaults.max_request_bytes, defaults.max_header_bytes) == (65536, 65536)
    limits = http_limits(defaults)
    assert limits.connections == connection_capacity()  # sized from the descriptor limit
    assert limits.connections_per_client == limits.connections // 4
    server = Config.load(stepca_pki.config(tmp_path / "b", server={
        "keepAlive": 2, "requestTimeout": 7, "headerTimeout": 3, "threads": 3,
        "maxHeaderBytes": 4096, "maxConnections": 50, "maxConnectionsPerClient": 5})).server
    assert (server.keep_alive, server.request_timeout, server.threads) == (2, 7, 3)
    assert http_limits(server) == Limits(head=4096, header_seconds=3, body_seconds=7,
                                         keep_alive_seconds=2, connections=50,
                                         connections_per_client=5)


def test_connection_capacity_follows_the_descriptor_limit():
    # A child process, so that lowering its limit leaves this one's alone.
    code = ("import resource; from stepca.httpserver import connection_capacity as c;"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (200, 5000)); print(c(),"
            "resource.getrlimit(resource.RLIMIT_NOFILE)[0]);"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (300, 300)); print(c())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=60)
    # the soft limit is raised toward the hard one (up to 4096 + 128 reserved); a hard limit of
    # 300 leaves 300 - 128
    assert result.stdout.split() == ["4096", "4224", "172"]


@pytest.mark.e2e
@pytest.mark.parametrize("server, args, expected", [
    ({}, [], max(1, min(os.cpu_count() or 1, 4))),  # sized to the machine, at most 4
    ({"workers": 1}, ["--workers", "3"], 3),  # the flag overrides ca.json
])
def test_step_ca_runs_the_configured_number_of_workers(stepca_pki, tmp_path, server, args,
                                                       expected):
    from stepca.testing.process import StepCAProcess, free_port

    port = free_port()
    overrides = {"server": server} if server else {}
    config = stepca_pki.config(tmp_path, address=f"127.0.0.1:{port}", **overrides)
    password = tmp_path / "pw"
    password.write_bytes(stepca_pki.password)
    ca = StepCAProcess(config, password_file=password, port=port, extra_args=args,
                       root=stepca_pki.steppath / "certs" / "root_ca.crt",
                       env={**os.environ, "STEPPATH": str(stepca_pki.steppath)}).start()
    try:
        deadline = time.monotonic() + 20
        while len(ca.pids()) < expected + 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # a surplus worker would have booted by now
        assert len(ca.pids()) == expected + 1, ca.logs()  # the master and its workers
        assert f"with {expected} worker(s)" in ca.logs()
    finally:
        ca.stop()



class RegionProvisioner(Provisioner):
    """Answers the tokens of a region, as an Azure provisioner those of its tenant."""

    type = "REGION"

    @staticmethod
    def token_lookup_key(token):
        return token.claims.get("region")

    @property
    def lookup_keys(self):
        return (self.config["region"],)

    def authorize_sign(self, token):
        raise NotImplementedError


class RegionPlugin:
    @hookimpl
    def stepca_provisioner_types(self):
        return [RegionProvisioner]


def test_two_provisioners_with_one_token_identifier(stepca_pki, tmp_path):
    # as step-ca: a token could only ever reach the first
    entries = [{"type": "REGION", "name": "a", "region": "eu"},
               {"type": "REGION", "name": "b", "region": "eu"}]
    with pytest.raises(ConfigError, match="provisioners 'a' and 'b' have the same token "
                                          "identifier 'eu'"):
        TestCA(stepca_pki.config(tmp_path, provisioners=entries), plugins=[RegionPlugin()])
    entries[1]["region"] = "us"
    TestCA(stepca_pki.config(tmp_path / "2", provisioners=entries),
           plugins=[RegionPlugin()]).close()


def test_provisioner_entries_are_read_with_errors_naming_the_key():
    from datetime import timedelta

    from stepca.provisioner import (
        check_config_keys,
        config_duration,
        config_flag,
        config_strings,
        config_text,
    )

    entry = {"type": "X", "name": "x", "accounts": ["1", "2"], "on": True, "age": "1h30m",
             "tenant": "t"}
    check_config_keys(entry, {"accounts", "on", "age", "tenant"})
    assert config_strings(entry, "accounts") == ("1", "2") and config_strings(entry, "no") == ()
    assert config_flag(entry, "on") is True and config_flag(entry, "no") is False
    assert config_duration(entry, "age") == timedelta(hours=1, minutes=30)
    assert config_duration(entry, "no") is None
    assert config_text(entry, "tenant") == "t" and config_text(entry, "no", "d") == "d"
    for call, message in [
        (lambda: check_config_keys({**entry, "acounts": []}, {"accounts"}), "unknown key"),
        (lambda: check_config_keys({"options": {}}, ()), "'options'"),
        (lambda: config_strings({"a": "1"}, "a"), "'a' must be a list"),
        (lambda: config_strings({"a": [""]}, "a"), "'a' must be a list"),
        (lambda: config_flag({"a": "yes"}, "a"), "'a' must be true or false"),
        (lambda: config_duration({"a": "-1h"}, "a"), "'a' cannot be negative"),
        (lambda: config_duration({"a": "1 hour"}, "a"), "'a': "),
        (lambda: config_text({}, "a"), "'a' is required"),
        (lambda: config_text({"a": 5}, "a"), "'a' must be a non-empty string"),
    ]:
        with pytest.raises(ValueError, match=message):
            call()
