"""`step-ca --check`: a configuration checked as a start would check it, every problem listed
at once, with nothing served, no database opened and no CRL built. And the strict reading of
the blocks stepca owns: an unknown key or a boolean given as a string is refused, at a start
too, never silently taken as its default."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from stepca.config import Config, ConfigError
from stepca.testing import TestPKI
from stepca.testing.process import free_port, scripts_dir


def step_ca(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
    return subprocess.run([str(scripts_dir() / "step-ca"), *args], env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=timeout)


@pytest.fixture
def password_file(stepca_pki: TestPKI, tmp_path: Path) -> Path:
    path = tmp_path / "password"
    path.write_bytes(stepca_pki.password)
    return path


def test_a_valid_config_passes_without_serving_or_opening_the_database(
        stepca_pki: TestPKI, tmp_path: Path, password_file: Path) -> None:
    config = stepca_pki.config(tmp_path, address=f"127.0.0.1:{free_port()}",
                               crl={"enabled": True})
    result = step_ca(str(config), "--check", "--password-file", str(password_file))
    assert result.returncode == 0, result.stderr
    assert result.stdout == (f"{config} is valid: 1 provisioner(s), db type 'sqlite' "
                             "installed (not opened)\n")
    assert not (tmp_path / "db").exists()  # no database made, so no CRL built either


def test_without_a_password_the_encrypted_key_is_not_opened_and_says_so(
        stepca_pki: TestPKI, tmp_path: Path) -> None:
    result = step_ca(str(stepca_pki.config(tmp_path)), "--check")
    assert result.returncode == 0, result.stderr
    assert "the intermediate key was not opened: pass --password-file" in result.stdout


def test_every_problem_is_listed_at_once(stepca_pki: TestPKI, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not the password")
    provisioner = dict(stepca_pki.ca_json["authority"]["provisioners"][0])
    provisioner["claims"] = {"disableRenewal": "yes"}
    config = stepca_pki.config(
        tmp_path, provisioners=[provisioner, {"type": "NOPE", "name": "other"}],
        crl={"enable": True}, ocsp={"enabled": "false"}, server={"workerz": 2},
        tls={"renegotiation": 0}, federatedRoots=[str(tmp_path / "missing.crt")])
    result = step_ca(str(config), "--check", "--password-file", str(wrong))
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == f"{config}: 8 problem(s):"
    for expected in (
            "crl: unknown setting 'enable' (did you mean 'enabled'?)",
            'ocsp.enabled must be true or false, not "false"',
            "server: unknown setting 'workerz' (did you mean 'workers'?)",
            "tls.renegotiation must be true or false, not 0",
            f"ca.json 'federatedRoots': {tmp_path / 'missing.crt'} does not exist",
            f"ca.json: provisioner '{provisioner['name']}': claim disableRenewal must be a "
            "boolean",
            "ca.json: provisioner 'other' has type 'NOPE', which no installed plugin provides"):
        assert any(line.startswith(f"  - {expected}") for line in lines), (expected, lines)
    assert any(line.startswith("  - intermediate key") for line in lines), lines
    assert "not the password" not in result.stderr


def test_a_missing_required_setting_is_listed_with_the_others(tmp_path: Path) -> None:
    config = tmp_path / "config" / "ca.json"
    config.parent.mkdir()
    config.write_text('{"address": "127.0.0.1:1", "crl": {"enabled": "true"}}')
    result = step_ca(str(config), "--check")
    assert result.returncode == 1
    assert result.stderr.splitlines()[1:] == [
        "  - ca.json: 'root' is required", "  - ca.json: 'crt' is required",
        "  - ca.json: 'key' is required",
        "  - ca.json: 'authority' is required: the block that lists the provisioners",
        '  - crl.enabled must be true or false, not "true"']


def test_unknown_top_level_keys_are_warnings(stepca_pki: TestPKI, tmp_path: Path) -> None:
    config = stepca_pki.config(tmp_path, crls={"enabled": True},
                               authority={"claimz": {"disableRenewal": True}})
    result = step_ca(str(config), "--check")
    assert result.returncode == 0, result.stderr
    assert "warning: ca.json: unknown setting 'crls' (did you mean 'crl'?)" in result.stderr
    assert "warning: authority: unknown setting 'claimz' (did you mean 'claims'?)" in \
        result.stderr


def test_a_start_refuses_what_the_check_refuses(stepca_pki: TestPKI, tmp_path: Path,
                                                password_file: Path) -> None:
    config = stepca_pki.config(tmp_path, address=f"127.0.0.1:{free_port()}",
                               crl={"enable": True})
    result = step_ca(str(config), "--password-file", str(password_file))
    assert result.returncode == 1
    assert result.stderr == "Error: crl: unknown setting 'enable' (did you mean 'enabled'?)\n"


@pytest.mark.parametrize(("block", "key"), [
    ("crl", "enabled"), ("crl", "generateOnRevoke"), ("ocsp", "enabled"),
    ("tls", "renegotiation"), ("authority", "disableIssuedAtCheck"),
    ("authority", "enableAdmin")])
@pytest.mark.parametrize("value", ["false", "true", 0, 1, None])
def test_booleans_are_booleans(stepca_pki: TestPKI, tmp_path: Path, block: str, key: str,
                               value: object) -> None:
    raw = dict(stepca_pki.ca_json)
    raw[block] = {**raw.get(block, {}), key: value}
    path = tmp_path / "config" / "ca.json"
    if value is None:  # null: the default, as if the key were absent
        Config.from_json(raw, path=path)
        return
    with pytest.raises(ConfigError) as raised:
        Config.from_json(raw, path=path)
    assert str(raised.value).endswith(f"must be true or false, not {value!r}".replace(
        "'", '"'))
    raw[block][key] = True
    Config.from_json(raw, path=path)


@pytest.mark.parametrize("block", ["crl", "ocsp", "tls", "server"])
def test_every_owned_block_refuses_unknown_keys(stepca_pki: TestPKI, tmp_path: Path,
                                                block: str) -> None:
    raw = {**stepca_pki.ca_json, block: {"nonsense": 1}}
    with pytest.raises(ConfigError, match=f"^{block}: unknown setting 'nonsense'"):
        Config.from_json(raw, path=tmp_path / "config" / "ca.json")


def test_no_provisioners_is_a_warning(stepca_pki: TestPKI, tmp_path: Path) -> None:
    result = step_ca(str(stepca_pki.config(tmp_path, provisioners=[])), "--check")
    assert result.returncode == 0, result.stderr
    assert "warning: authority: no provisioners: the CA issues no new certificate" in \
        result.stderr


def test_the_check_fetches_no_providers_keys(stepca_pki: TestPKI, tmp_path: Path) -> None:
    """Checking an OIDC (or GCP, Azure) provisioner reads its entry; it does not go to the
    network for the provider's keys, as a start does in its workers."""
    import http.server
    import threading

    hits: list[str] = []

    class Provider(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            hits.append(self.path)
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Provider) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        provisioners = [*stepca_pki.ca_json["authority"]["provisioners"], {
            "type": "OIDC", "name": "sso", "clientID": "stepca", "clientSecret": "",
            "configurationEndpoint": f"{endpoint}/.well-known/openid-configuration"}]
        result = step_ca(str(stepca_pki.config(tmp_path, provisioners=provisioners)),
                         "--check")
        server.shutdown()
    assert result.returncode == 0, result.stderr
    assert "2 provisioner(s)" in result.stdout
    assert hits == []
