"""`step ca provisioner add --type JWK`, `update` and `remove` through the real `step`: ca.json
is edited as step edits it without an admin API (`✔ CA Configuration: <path>`), keeping its mode
and every key it does not change, and `step-ca --check` accepts what is written; a refusal is
one line and leaves the file byte-identical."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from stepca.jose import decrypt_pbes2, encrypt_pbes2, jwe_header, jwk_from_key, thumbprint
from stepca.testing import make_pki
from stepca.testing.process import run_step, scripts_dir
from stepca.x509util import generate_key

PASSWORD = "provisioner password"


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki") / "step").steppath


@pytest.fixture
def ca_json(pki_dir: Path, tmp_path: Path) -> Path:
    """A real ca.json (its root, intermediate and db are the module's PKI), with a key of
    another plugin, an AWS provisioner (which fetches nothing when the CA loads it) and the
    operator's mode."""
    config = json.loads((pki_dir / "config" / "ca.json").read_text())
    config["somethingOfAnotherPlugin"] = {"kept": True}
    config["authority"]["provisioners"].append(
        {"type": "AWS", "name": "amazon", "accounts": ["a", "b"], "disableCustomSANs": True,
         "claims": {"maxTLSCertDuration": "48h"}})
    path = tmp_path / "ca.json"
    path.write_text(json.dumps(config, indent="\t"))
    path.chmod(0o640)
    (tmp_path / "password").write_text(PASSWORD + "\n")
    return path


def _step(ca_json: Path, *args: str, stdin: str | None = None) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
    env["STEPPATH"] = str(ca_json.parent / "step")
    return run_step("ca", "provisioner", *args, "--ca-config", str(ca_json), env=env,
                    check=False, cwd=ca_json.parent, input=stdin)


def _provisioners(ca_json: Path) -> list[dict[str, Any]]:
    return json.loads(ca_json.read_text())["authority"]["provisioners"]


def _entry(ca_json: Path, name: str) -> dict[str, Any]:
    return next(p for p in _provisioners(ca_json) if p["name"] == name)


def _written(done: Any, ca_json: Path, *, check: bool = True) -> None:
    """step's report, the file's mode and the other keys kept, and step-ca accepts it (unless
    it would have to fetch a cloud's keys to check it)."""
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines()[-3:] == [
        f"✔ CA Configuration: {ca_json}", "",
        "Success! Your `step-ca` config has been updated. To pick up the new configuration "
        "SIGHUP (kill -1 <pid>) or restart the step-ca process."]
    assert stat.S_IMODE(ca_json.stat().st_mode) == 0o640
    config = json.loads(ca_json.read_text())
    assert config["somethingOfAnotherPlugin"] == {"kept": True}
    assert ca_json.read_text().startswith("{\n\t")
    if not check:
        return
    checked = subprocess.run([str(scripts_dir() / "step-ca"), str(ca_json), "--check"],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _refused(ca_json: Path, reason: str, *args: str) -> None:
    before = ca_json.read_bytes()
    done = _step(ca_json, *args)
    assert done.returncode == 1 and reason in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert ca_json.read_bytes() == before


def _unsealed(entry: dict[str, Any], password: str = PASSWORD) -> dict[str, Any]:
    return json.loads(decrypt_pbes2(entry["encryptedKey"], password.encode()))


# -- add --type JWK --------------------------------------------------------------------------------

def test_create_makes_a_p256_key_escrowed_as_step_ca_init_does(ca_json: Path) -> None:
    done = _step(ca_json, "add", "ci", "--create", "--password-file", "password",
                 "--x509-default-dur", "2h", "--disable-renewal")
    _written(done, ca_json)
    entry = _entry(ca_json, "ci")
    assert list(entry) == ["type", "name", "key", "encryptedKey", "claims"]
    assert entry["type"] == "JWK"
    assert entry["claims"] == {"defaultTLSCertDuration": "2h", "disableRenewal": True}
    key = entry["key"]
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
    assert key["kid"] == thumbprint(key) and "d" not in key
    init_key = _provisioners(ca_json)[0]["encryptedKey"]
    assert jwe_header(entry["encryptedKey"]) | {"p2s": ""} == jwe_header(init_key) | {"p2s": ""}
    private = _unsealed(entry)  # the password file's content, right-trimmed as step does
    assert {k: v for k, v in private.items() if k != "d"} == key


def test_a_pem_or_jwk_public_key_is_the_key_and_its_kid_kept(ca_json: Path) -> None:
    key = generate_key("EC", curve="P-384")
    pem = ca_json.parent / "key.pub"
    pem.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    _written(_step(ca_json, "add", "pem", "--public-key", str(pem)), ca_json)
    entry = _entry(ca_json, "pem")
    assert entry["key"] == jwk_from_key(key.public_key()) and "encryptedKey" not in entry
    assert entry["key"]["alg"] == "ES384"

    jwk = ca_json.parent / "key.json"
    jwk.write_text(json.dumps(jwk_from_key(generate_key("EC").public_key(), kid="mine")))
    _written(_step(ca_json, "add", "jwk", "--public-key", str(jwk)), ca_json)
    assert _entry(ca_json, "jwk")["key"]["kid"] == "mine"


def test_a_private_key_is_sealed_with_the_password(ca_json: Path) -> None:
    key = generate_key("EC")
    pem = ca_json.parent / "key.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    done = _step(ca_json, "add", "own", "--private-key", str(pem), "--password-file", "password")
    _written(done, ca_json)
    entry = _entry(ca_json, "own")
    assert entry["key"] == jwk_from_key(key.public_key())
    assert _unsealed(entry)["d"] == jwk_from_key(key, private=True)["d"]
    assert _unsealed(entry)["kid"] == entry["key"]["kid"]

    # a JWE is kept as it is, next to its public key
    public = ca_json.parent / "other.pub"
    other = jwk_from_key(generate_key("EC"), private=True)
    public.write_text(json.dumps({k: v for k, v in other.items() if k != "d"}))
    sealed = encrypt_pbes2(json.dumps(other).encode(), b"theirs")
    (ca_json.parent / "other.jwe").write_text(sealed + "\n")
    _written(_step(ca_json, "add", "theirs", "--public-key", str(public), "--private-key",
                   "other.jwe"), ca_json)
    assert _entry(ca_json, "theirs")["encryptedKey"] == sealed


def test_without_a_terminal_the_password_file_is_required(ca_json: Path) -> None:
    _refused(ca_json, "requires the '--password-file' flag (no terminal", "add", "ci",
             "--create")


@pytest.fixture
def key_files(ca_json: Path) -> Path:
    folder = ca_json.parent
    (folder / "a.pub").write_text(json.dumps(jwk_from_key(generate_key("EC").public_key())))
    (folder / "b.json").write_text(json.dumps(jwk_from_key(generate_key("EC"), private=True)))
    (folder / "oct.json").write_text(json.dumps({"kty": "oct", "k": "c2VjcmV0"}))
    (folder / "sealed.jwe").write_text(encrypt_pbes2(b"{}", b"x"))
    (folder / "not-a-key").write_text("hello")
    return folder


@pytest.mark.parametrize(("args", "reason"), [
    (("--create", "--public-key", "a.pub"), "'--create' is incompatible with '--public-key'"),
    (("--create", "--private-key", "b.json"), "'--create' is incompatible with '--private-key'"),
    (("--public-key", "oct.json"), "a symmetric key cannot be used as a provisioner"),
    (("--public-key", "not-a-key"), "error reading --public-key"),
    (("--public-key", "a.pub", "--private-key", "b.json", "--password-file", "password"),
     "the key of '--private-key' is not the private key of '--public-key'"),
    (("--private-key", "a.pub", "--password-file", "password"), "the file holds a public key"),
    (("--private-key", "sealed.jwe"), "with an encrypted key requires the '--public-key' flag"),
    (("--public-key", "a.pub", "--password-file", "password"),
     "'--password-file' is only used with '--create' or '--private-key'"),
    (("--create", "--password-file", "nope"), "'--password-file': nope is not a readable file"),
    (("--create", "--password-file", "password", "--x509-min-dur", "1h", "--x509-max-dur",
      "30m"), "maxTLSCertDuration cannot be less than minTLSCertDuration"),
])
def test_jwk_refusals_change_nothing(ca_json: Path, key_files: Path, args: tuple[str, ...],
                                     reason: str) -> None:
    _refused(ca_json, reason, "add", "x", *args)


# -- update ----------------------------------------------------------------------------------------

def test_update_changes_the_given_flags_and_keeps_the_rest(ca_json: Path) -> None:
    first = _provisioners(ca_json)[0]
    done = _step(ca_json, "update", first["name"], "--x509-max-dur", "36h",
                 "--allow-renewal-after-expiry")
    _written(done, ca_json)
    updated = _provisioners(ca_json)[0]
    assert updated == {**first, "claims": {"maxTLSCertDuration": "36h",
                                           "allowRenewalAfterExpiry": True}}

    done = _step(ca_json, "update", "amazon", "--aws-account", "c", "--remove-aws-account", "a",
                 "--disable-custom-sans=false", "--instance-age", "1h",
                 "--x509-max-dur", "", "--disable-renewal", "--name", "aws")
    _written(done, ca_json)
    assert _entry(ca_json, "aws") == {"type": "AWS", "name": "aws", "accounts": ["b", "c"],
                                      "instanceAge": "1h", "claims": {"disableRenewal": True}}
    assert [p["name"] for p in _provisioners(ca_json)] == [first["name"], "aws"]  # in place


def test_update_replaces_or_drops_a_jwk_key(ca_json: Path) -> None:
    name = _provisioners(ca_json)[0]["name"]
    old_key = _provisioners(ca_json)[0]["key"]
    _written(_step(ca_json, "update", name, "--create", "--password-file", "password"), ca_json)
    entry = _entry(ca_json, name)
    assert entry["key"]["kid"] != old_key["kid"] and _unsealed(entry)["kid"] == entry["key"]["kid"]
    _written(_step(ca_json, "update", name, "--private-key", ""), ca_json)
    assert "encryptedKey" not in _entry(ca_json, name)

    # a private key alone must be the provisioner's; it is kept, the key stays
    (ca_json.parent / "other.json").write_text(
        json.dumps(jwk_from_key(generate_key("EC"), private=True)))
    _refused(ca_json, "the key of '--private-key' is not the private key of the provisioner's "
             "key", "update", name, "--private-key", "other.json", "--password-file",
             "password")
    sealed = ca_json.parent / "sealed.jwe"
    sealed.write_text(entry["encryptedKey"])  # the one --create made, kept back
    _written(_step(ca_json, "update", name, "--private-key", str(sealed)), ca_json)
    assert _entry(ca_json, name)["key"] == entry["key"]
    assert _entry(ca_json, name)["encryptedKey"] == sealed.read_text()


@pytest.mark.parametrize(("args", "reason"), [
    (("nobody", "--x509-max-dur", "1h"), "provisioner 'nobody' not found in"),
    (("amazon",), "nothing to update: give the flags to change"),
    (("amazon", "--name", "PROVISIONER"), "a provisioner named 'PROVISIONER' already exists"),
    (("amazon", "--name", " "), "the provisioner name cannot be empty"),
    (("amazon", "--gcp-project", "1"), "flag '--gcp-project' is not used by provisioners of "
                                       "type AWS"),
    (("amazon", "--x509-min-dur", "72h"), "maxTLSCertDuration cannot be less than "
                                          "minTLSCertDuration"),
    (("amazon", "--instance-age", "soon"), "'--instance-age': invalid duration"),
    (("amazon", "--create"), "flag '--create' is not used by provisioners of type AWS"),
    (("amazon", "--remove-aws-account", ""), "'--remove-aws-account' cannot be empty"),
])
def test_update_refusals_change_nothing(ca_json: Path, args: tuple[str, ...],
                                        reason: str) -> None:
    config = json.loads(ca_json.read_text())
    reason = reason.replace("PROVISIONER", config["authority"]["provisioners"][0]["name"])
    args = tuple(a.replace("PROVISIONER", config["authority"]["provisioners"][0]["name"])
                 for a in args)
    _refused(ca_json, reason, "update", *args)


def test_a_switch_takes_true_or_false(ca_json: Path) -> None:
    before = ca_json.read_bytes()
    done = _step(ca_json, "update", "amazon", "--disable-renewal=maybe")
    assert done.returncode == 1 and "'maybe' is not a valid boolean" in done.stderr
    assert ca_json.read_bytes() == before
    _written(_step(ca_json, "update", "amazon", "--disable-renewal=true"), ca_json)
    assert _entry(ca_json, "amazon")["claims"]["disableRenewal"] is True


def test_update_keeps_what_a_type_requires(ca_json: Path) -> None:
    _written(_step(ca_json, "add", "azure", "--type", "Azure", "--azure-tenant", "t"), ca_json,
             check=False)
    _refused(ca_json, "flag '--azure-tenant' cannot be removed: provisioners of type Azure "
             "require it", "update", "azure", "--azure-tenant", "")


# -- remove ----------------------------------------------------------------------------------------

def test_remove_takes_the_provisioner_out(ca_json: Path) -> None:
    before = _provisioners(ca_json)
    _written(_step(ca_json, "remove", "amazon"), ca_json)
    assert _provisioners(ca_json) == before[:1]
    _refused(ca_json, "provisioner 'amazon' not found in", "remove", "amazon")
    _refused(ca_json, f"provisioner '{before[0]['name']}' is the last one in",
             "remove", before[0]["name"])


def test_remove_chooses_by_kid_or_client_id_among_namesakes(ca_json: Path) -> None:
    config = json.loads(ca_json.read_text())
    first = config["authority"]["provisioners"][0]
    twin = {**first, "key": {**first["key"], "kid": "twin"}}
    oidc = {"type": "OIDC", "name": first["name"], "clientID": "app",
            "configurationEndpoint": "https://id.example/.well-known/openid-configuration"}
    config["authority"]["provisioners"] += [twin, oidc]
    ca_json.write_text(json.dumps(config, indent="\t"))
    name = first["name"]
    _refused(ca_json, f"3 provisioners are named '{name}'", "remove", name)
    _refused(ca_json, f"provisioner '{name}' with kid other not found", "remove", name,
             "--kid", "other")
    _refused(ca_json, "'--kid' and flag '--client-id' are mutually exclusive", "remove", name,
             "--kid", "twin", "--client-id", "app")
    _written(_step(ca_json, "remove", name, "--kid", "twin"), ca_json, check=False)
    _written(_step(ca_json, "remove", name, "--client-id", "app"), ca_json)
    assert [p.get("key", {}).get("kid") for p in _provisioners(ca_json)] == [
        first["key"]["kid"], None]


def test_create_on_a_terminal_asks_for_the_password_and_generates_one(ca_json: Path) -> None:
    from stepca.testing.terminal import Terminal

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("STEP")},
           "STEPPATH": str(ca_json.parent / "step"), "TERM": "dumb"}
    term = Terminal([str(scripts_dir() / "step"), "ca", "provisioner", "add", "ci", "--create",
                     "--ca-config", str(ca_json)], env)
    term.expect("Please enter a password to encrypt the provisioner private key? [leave empty "
                "and we'll generate one]: ")
    term.send("")
    assert term.finish() == 0, term.output
    password = re.search(r"✔ Password: ([A-Za-z0-9]{32})", term.output).group(1)
    assert f"✔ CA Configuration: {ca_json}" in term.output
    assert _unsealed(_entry(ca_json, "ci"), password)["kid"] == _entry(ca_json, "ci")["key"]["kid"]
