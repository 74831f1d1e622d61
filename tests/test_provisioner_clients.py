"""The client half of the plugin API through the real ``step`` and ``step-ca``: a third-party
provisioner type (tests/example_plugin's HMAC, with its client) issues with ``step ca
certificate`` unchanged; a type the CLI has no plugin for is one line naming the distribution;
plugins' clients are imported only when their type is used."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from stepca.jose import b64url_encode, parse_unverified
from stepca.testing.http import running_ca
from stepca.testing.process import run_step

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).parent / "example_plugin"


def _install_example(site: Path) -> str:
    """A hand-made installation of tests/example_plugin: a .dist-info, and the folder."""
    info = site / "stepca_example_hmac-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: stepca-example-hmac\n"
                                   "Version: 0.1.0\n")
    (info / "entry_points.txt").write_text("[stepca.plugins]\nexample_hmac = "
                                           "stepca_example_hmac\n")
    return os.pathsep.join([str(site), str(EXAMPLE)])


@pytest.fixture
def hmac_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PYTHONPATH", _install_example(tmp_path / "site"))
    secret = tmp_path / "secret.txt"
    secret.write_text(b64url_encode(secrets.token_bytes(32)) + "\n")
    provisioner = {"type": "HMAC", "name": "ci", "secret": secret.read_text().strip()}
    with running_ca(tmp_path, ca_json={"provisioners": [provisioner]}) as ca:
        base = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
        env = {**base, "STEPPATH": str(tmp_path / "step"),
               "STEP_CA_URL": f"https://127.0.0.1:{ca.port}", "STEP_ROOT": str(ca.root)}
        yield ca, env, secret


def test_a_third_party_provisioner_issues_with_step_ca_certificate(hmac_ca, tmp_path: Path):
    ca, env, secret = hmac_ca
    run_step("ca", "certificate", "svc.example.com", "svc.crt", "svc.key", "--provisioner",
             "ci", "--provisioner-password-file", str(secret), "--san", "svc.example.com",
             "--san", "10.0.0.7",
             env=env, cwd=tmp_path)
    certificate = x509.load_pem_x509_certificate((tmp_path / "svc.crt").read_bytes())
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["svc.example.com"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.7"]
    token = run_step("ca", "token", "svc.example.com", "--provisioner", "ci",
                     "--provisioner-password-file", str(secret), env=env,
                     cwd=tmp_path).stdout.strip()
    claims = parse_unverified(token).claims
    assert claims["iss"] == "ci" and claims["aud"] == f"https://127.0.0.1:{ca.port}/1.0/sign"


def test_a_flag_the_type_does_not_use_is_refused(hmac_ca, tmp_path: Path):
    _ca, env, secret = hmac_ca
    done = run_step("ca", "token", "svc.example.com", "--provisioner", "ci", "--key",
                    str(secret), "--provisioner-password-file", str(secret), env=env,
                    cwd=tmp_path, check=False)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == ("flag '--key' is not used by provisioner 'ci' of "
                                            "type HMAC")


def test_a_type_without_a_client_plugin_names_its_distribution(hmac_ca, tmp_path: Path):
    _ca, env, secret = hmac_ca
    env = {k: v for k, v in env.items() if k != "PYTHONPATH"}  # the CLI lacks the plugin
    done = run_step("ca", "certificate", "svc.example.com", "svc.crt", "svc.key",
                    "--provisioner", "ci", "--provisioner-password-file", str(secret), env=env,
                    cwd=tmp_path, check=False)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "provisioner 'ci' has type HMAC, which no installed plugin provides a client for: "
        "pip install stepca-hmac")
    assert not (tmp_path / "svc.key").exists()


def test_the_ca_and_the_cli_name_the_same_distribution():
    from stepca.plugins import distribution_for

    assert distribution_for("GCP") == "stepca-gcp" and distribution_for("Azure") == \
        "stepca-azure"


def test_step_help_imports_no_provisioner_client():
    code = ("import json, sys\nsys.argv = ['step', '--help']\nfrom stepca_cli.main import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(['stepca_jwk' in sys.modules, 'stepca_jwk.client' in "
            "sys.modules]))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60, check=True)
    # the JWK plugin is loaded (its hooks are registered), its client module is not
    assert json.loads(done.stdout.splitlines()[-1]) == [True, False]


# -- what the cloud types share --------------------------------------------------------------------

def test_the_sign_audience_fragment_is_escaped_as_go_escapes_one():
    from stepca.provisioner_client import sign_audience

    assert (sign_audience("https://ca.example:9000/1.0/sign", "gcp/Google Cloud/é+ops")
            == "https://ca.example:9000/1.0/sign#gcp/Google%20Cloud/%C3%A9+ops")


def test_the_fragment_finds_the_provisioner_and_must_name_it_on_a_sign_url():
    from stepca.errors import Unauthorized
    from stepca.jose import Token
    from stepca.provisioner import Audiences, check_fragment_audience, fragment_lookup_key

    def token(aud: object) -> Token:
        return Token(raw="", header={}, claims={"aud": aud})

    audiences = Audiences.for_dns_names(["ca.example"])
    sign = "https://ca.example:9000/1.0/sign"
    assert fragment_lookup_key(token([f"{sign}#aws/AWS%20prod"]), "aws") == "aws/AWS prod"
    assert fragment_lookup_key(token(f"{sign}#gcp/g"), "gcp") == "gcp/g"
    for other in (f"{sign}#gcp/g", sign, [], None, 7, [7]):
        assert fragment_lookup_key(token(other), "aws") is None
    check_fragment_audience(token([f"{sign}#aws/AWS%20prod"]), audiences, "aws/AWS prod")
    for wrong in (f"{sign}#aws/other", "https://elsewhere/1.0/sign#aws/AWS%20prod",
                  sign, [None], None):
        with pytest.raises(Unauthorized, match="wrong audience"):
            check_fragment_audience(token(wrong), audiences, "aws/AWS prod")
