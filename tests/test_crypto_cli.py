"""``step crypto`` through the real CLI, checked by independent implementations: openssl for PEM
keys, jwcrypto for JOSE, sha256sum for digests and the RFC 6238 vectors for TOTP."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from jwcrypto import jwa as jwc_jwa
from jwcrypto import jwe as jwc_jwe
from jwcrypto import jwk as jwc_jwk
from jwcrypto import jws as jwc_jws
from stepca.testing.process import run_step

PASSWORD = "correct horse battery staple"
NEEDS_OPENSSL = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@pytest.fixture
def env(tmp_path):
    base = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
    return {**base, "STEPPATH": str(tmp_path / "step")}


@pytest.fixture
def pw(tmp_path) -> Path:
    path = tmp_path / "pw.txt"
    path.write_text(PASSWORD + "\n")  # step right-trims password files
    return path


def step(env, tmp, *args, input=None, check=True):
    return run_step("crypto", *args, env=env, cwd=tmp, input=input, check=check)


def fails(env, tmp, *args, input=None) -> str:
    result = step(env, tmp, *args, input=input, check=False)
    assert result.returncode == 1, result
    assert result.stdout == ""
    return result.stderr


def openssl(*args: str, input: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], input=input, capture_output=True,
                          check=True).stdout


# -- keypair / change-pass -------------------------------------------------------------------------

@NEEDS_OPENSSL
@pytest.mark.parametrize("flags", [[], ["--kty", "EC", "--curve", "P-384"],
                                   ["--kty", "RSA", "--size", "2048"], ["--kty", "OKP"]])
def test_keypair_is_encrypted_and_openssl_decrypts_it(env, tmp_path, pw, flags):
    result = step(env, tmp_path, "keypair", "k.pub", "k.key", "--password-file", str(pw), *flags)
    assert result.stdout == ""
    assert "Your public key has been saved in k.pub." in result.stderr
    assert "Your private key has been saved in k.key." in result.stderr
    for name in ("k.pub", "k.key"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    key_pem = (tmp_path / "k.key").read_bytes()
    assert b"ENCRYPTED" in key_pem
    pub_from_key = openssl("pkey", "-in", str(tmp_path / "k.key"), "-passin", f"file:{pw}",
                           "-pubout")
    assert pub_from_key == (tmp_path / "k.pub").read_bytes()
    with pytest.raises(subprocess.CalledProcessError):
        openssl("pkey", "-in", str(tmp_path / "k.key"), "-passin", "pass:wrong")


def test_keypair_refuses_insecure_choices(env, tmp_path, pw):
    assert "requires the '--insecure' flag" in fails(env, tmp_path, "keypair", "a", "b",
                                                      "--no-password")
    assert "requires at least 2048 unless '--insecure'" in fails(
        env, tmp_path, "keypair", "a", "b", "--kty", "RSA", "--size", "1024",
        "--password-file", str(pw))
    assert "cannot be equal" in fails(env, tmp_path, "keypair", "a", "a")
    assert "flag '--curve' requires the '--kty' flag" in fails(env, tmp_path, "keypair", "a",
                                                               "b", "--curve", "P-384")
    # Without a terminal the password must come from a flag: a clear error, never a hang.
    assert "--password-file" in fails(env, tmp_path, "keypair", "a", "b")
    step(env, tmp_path, "keypair", "a", "b", "--no-password", "--insecure")
    assert b"ENCRYPTED" not in (tmp_path / "b").read_bytes()
    assert "already exists" in fails(env, tmp_path, "keypair", "a", "b", "--no-password",
                                     "--insecure")


@NEEDS_OPENSSL
@pytest.mark.parametrize("form", [["-aes256"], ["-traditional", "-aes256"]])
def test_change_pass_reads_openssl_keys(env, tmp_path, pw, form):
    plain = openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
    encrypted = openssl("pkey", *form, "-passout", f"file:{pw}", input=plain)
    assert (b"Proc-Type: 4,ENCRYPTED" in encrypted) == ("-traditional" in form)
    (tmp_path / "k.pem").write_bytes(encrypted)
    new = tmp_path / "new.txt"
    new.write_text("another password")
    result = step(env, tmp_path, "change-pass", "k.pem", "--password-file", str(pw),
                  "--new-password-file", str(new), "--out", "out.pem")
    assert "Your key has been saved in out.pem." in result.stderr
    assert (tmp_path / "out.pem").stat().st_mode & 0o777 == 0o600
    ours = openssl("pkey", "-in", str(tmp_path / "out.pem"), "-passin", f"file:{new}")
    assert ours == openssl("pkey", input=plain)
    # In place needs --force (no terminal to ask on), then the old password no longer works.
    assert "already exists" in fails(env, tmp_path, "change-pass", "out.pem", "--password-file",
                                     str(new), "--new-password-file", str(pw))
    step(env, tmp_path, "change-pass", "out.pem", "--password-file", str(new),
         "--no-password", "--insecure", "-f")
    assert openssl("pkey", "-in", str(tmp_path / "out.pem")) == ours
    assert "decrypt" in fails(env, tmp_path, "change-pass", "k.pem", "--password-file", str(new),
                              "--new-password-file", str(pw), "--out", "x.pem")


def test_change_pass_on_jwk(env, tmp_path, pw):
    step(env, tmp_path, "jwk", "create", "j.pub", "j.key", "--password-file", str(pw))
    new = tmp_path / "new.txt"
    new.write_text("second")
    step(env, tmp_path, "change-pass", "j.key", "--password-file", str(pw),
         "--new-password-file", str(new), "-f")
    data = json.loads((tmp_path / "j.key").read_text())
    assert set(data) >= {"protected", "encrypted_key", "iv", "ciphertext", "tag"}
    public = json.loads(step(env, tmp_path, "jwk", "public", "--password-file", str(new),
                             input=(tmp_path / "j.key").read_text()).stdout)
    assert public == json.loads((tmp_path / "j.pub").read_text())


# -- JOSE against jwcrypto -------------------------------------------------------------------------

KEY_FLAGS = {
    "ES256": ["--kty", "EC", "--crv", "P-256"],
    "ES384": ["--kty", "EC", "--crv", "P-384"],
    "ES512": ["--kty", "EC", "--crv", "P-521"],
    "RS256": ["--kty", "RSA"],
    "PS256": ["--kty", "RSA", "--alg", "PS256"],
    "EdDSA": ["--kty", "OKP", "--crv", "Ed25519"],
}


def make_jwk(env, tmp, flags, name="k"):
    step(env, tmp, "jwk", "create", f"{name}.pub", f"{name}.json", "--no-password", "--insecure",
         *flags)
    return json.loads((tmp / f"{name}.json").read_text())


def claims_flags(exp: int | None = None):
    return ["--iss", "issuer", "--aud", "audience", "--sub", "subject", "--exp",
            str(exp or int(time.time()) + 300)]


@pytest.mark.parametrize("alg", list(KEY_FLAGS))
def test_jwt_both_ways_with_jwcrypto(env, tmp_path, alg):
    private = make_jwk(env, tmp_path, KEY_FLAGS[alg])
    assert private["alg"] == alg and private["use"] == "sig"
    theirs = jwc_jwk.JWK(**private)
    token = step(env, tmp_path, "jwt", "sign", "--key", "k.json", *claims_flags()).stdout.strip()
    checked = jwc_jws.JWS()
    checked.deserialize(token)
    checked.verify(theirs.public(), alg=alg)
    claims = json.loads(checked.payload)
    assert claims["iss"] == "issuer" and claims["aud"] == "audience" and claims["jti"]
    assert json.loads(checked.objects["protected"])["kid"] == private["kid"]

    made_there = jwc_jws.JWS(json.dumps({"iss": "issuer", "aud": ["x", "audience"],
                                         "exp": int(time.time()) + 60}).encode())
    made_there.add_signature(theirs, alg=alg, protected={"alg": alg, "kid": private["kid"]})
    out = step(env, tmp_path, "jwt", "verify", "--key", "k.pub", "--iss", "issuer", "--aud",
               "audience", input=made_there.serialize(compact=True))
    assert json.loads(out.stdout)["payload"]["aud"] == ["x", "audience"]


def test_jwt_and_jws_with_x5c_chain_verified_by_jwcrypto(env, tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    def create(*args):
        run_step("certificate", "create", *args, "--no-password", "--insecure", env=env,
                 cwd=tmp_path)

    create("Root", "root.crt", "root.key", "--profile", "root-ca")
    create("leaf", "leaf.crt", "leaf.key", "--ca", "root.crt", "--ca-key", "root.key",
           "--bundle")
    create("other", "other.crt", "other.key", "--profile", "self-signed", "--subtle")
    chain = x509.load_pem_x509_certificates((tmp_path / "leaf.crt").read_bytes())
    token = step(env, tmp_path, "jwt", "sign", "--x5c-cert", "leaf.crt", "--x5c-key", "leaf.key",
                 *claims_flags()).stdout.strip()
    checked = jwc_jws.JWS()
    checked.deserialize(token)
    header = json.loads(checked.objects["protected"])
    assert [base64.b64decode(c) for c in header["x5c"]] == [
        c.public_bytes(serialization.Encoding.DER) for c in chain]
    signer = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    checked.verify(jwc_jwk.JWK.from_pyca(signer.public_key()), alg="ES256")

    jws = step(env, tmp_path, "jws", "sign", "--x5c-cert", "leaf.crt", "--x5c-key", "leaf.key",
               "--x5c-insecure", input="payload").stdout.strip()
    checked = jwc_jws.JWS()
    checked.deserialize(jws)
    assert "x5cInsecure" in json.loads(checked.objects["protected"])
    checked.verify(jwc_jwk.JWK.from_pyca(chain[0].public_key()), alg="ES256")
    assert checked.payload == b"payload"

    assert "does not match the certificate" in fails(
        env, tmp_path, "jwt", "sign", "--x5c-cert", "leaf.crt", "--x5c-key", "other.key",
        *claims_flags())
    assert "must be used together" in fails(env, tmp_path, "jwt", "sign", "--x5c-cert",
                                            "leaf.crt", *claims_flags())
    assert "cannot be used with" in fails(env, tmp_path, "jws", "sign", "--x5c-cert", "leaf.crt",
                                          "--x5c-key", "leaf.key", "--key", "leaf.key",
                                          input="x")


def test_jwt_verify_with_pem_and_keyset(env, tmp_path, pw):
    step(env, tmp_path, "keypair", "k.pub", "k.key", "--password-file", str(pw))
    token = step(env, tmp_path, "jwt", "sign", "--key", "k.key", "--password-file", str(pw),
                 *claims_flags()).stdout
    step(env, tmp_path, "jwt", "verify", "--key", "k.pub", "--iss", "issuer", "--aud",
         "audience", input=token)
    make_jwk(env, tmp_path, [], name="other")
    step(env, tmp_path, "jwk", "keyset", "add", "set.json",
         input=(tmp_path / "other.pub").read_text())
    kid = step(env, tmp_path, "jwk", "keyset", "list", "set.json").stdout.strip()
    assert kid == json.loads((tmp_path / "other.pub").read_text())["kid"]
    token = step(env, tmp_path, "jwt", "sign", "--key", "other.json", *claims_flags()).stdout
    step(env, tmp_path, "jwt", "verify", "--jwks", "set.json", "--iss", "issuer", "--aud",
         "audience", input=token)
    assert "already exists" in fails(env, tmp_path, "jwk", "keyset", "add", "set.json",
                                     input=(tmp_path / "other.pub").read_text())
    found = step(env, tmp_path, "jwk", "keyset", "find", "set.json", "--kid", kid).stdout
    assert json.loads(found)["kid"] == kid
    step(env, tmp_path, "jwk", "keyset", "remove", "set.json", "--kid", kid)
    assert step(env, tmp_path, "jwk", "keyset", "list", "set.json").stdout == ""


def test_jwt_refusals(env, tmp_path):
    private = make_jwk(env, tmp_path, KEY_FLAGS["ES256"])
    ok = ["--key", "k.pub", "--iss", "issuer", "--aud", "audience"]
    # alg none: an unsigned token is never accepted.
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    claims = json.dumps({"iss": "issuer", "aud": "audience", "exp": int(time.time()) + 60})
    body = base64.urlsafe_b64encode(claims.encode()).rstrip(b"=").decode()
    unsigned = f"{header}.{body}."
    assert "alg none" in fails(env, tmp_path, "jwt", "verify", *ok, input=unsigned)
    assert "--insecure" in fails(env, tmp_path, "jwt", "sign", "--alg", "none", "--subtle")
    # HS256 "signed" with the public key's bytes (the key-confusion attack).
    forged = jwc_jws.JWS(claims.encode())
    secret = jwc_jwk.JWK(kty="oct", k=base64.urlsafe_b64encode(
        (tmp_path / "k.pub").read_bytes()).rstrip(b"=").decode())
    forged.add_signature(secret, alg="HS256", protected={"alg": "HS256"})
    err = fails(env, tmp_path, "jwt", "verify", *ok, input=forged.serialize(compact=True))
    assert "validation failed" in err and "HS256" in err
    forged_alg = fails(env, tmp_path, "jwt", "verify", *ok, "--alg", "HS256",
                       input=forged.serialize(compact=True))
    assert "does not match the alg on the key 'ES256'" in forged_alg
    # A PEM public key carries no alg, so an explicit --alg HS256 reaches the key-type check.
    step(env, tmp_path, "key", "format", "k.pub", "--pem", "--out", "k.pem")
    forged_pem = fails(env, tmp_path, "jwt", "verify", "--key", "k.pem", "--iss", "issuer",
                       "--aud", "audience", "--alg", "HS256", input=forged.serialize(compact=True))
    assert "requires a symmetric key, not a public key" in forged_pem
    # Expired, wrong audience, wrong issuer.
    expired = step(env, tmp_path, "jwt", "sign", "--key", "k.json", "--subtle", "--iss", "issuer",
                   "--aud", "audience", "--exp", str(int(time.time()) - 3600)).stdout
    assert "expired" in fails(env, tmp_path, "jwt", "verify", *ok, input=expired)
    token = step(env, tmp_path, "jwt", "sign", "--key", "k.json", *claims_flags()).stdout
    assert "invalid audience" in fails(env, tmp_path, "jwt", "verify", "--key", "k.pub",
                                       "--iss", "issuer", "--aud", "someone-else", input=token)
    assert "invalid issuer" in fails(env, tmp_path, "jwt", "verify", "--key", "k.pub",
                                     "--iss", "mallory", "--aud", "audience", input=token)
    # A token signed by another key.
    make_jwk(env, tmp_path, KEY_FLAGS["ES256"], name="other")
    other = step(env, tmp_path, "jwt", "sign", "--key", "other.json", *claims_flags()).stdout
    assert "invalid token signature" in fails(env, tmp_path, "jwt", "verify", *ok, input=other)
    # Without --subtle the claims step requires must be present and exp in the future.
    assert "'--exp' is required unless the '--subtle'" in fails(
        env, tmp_path, "jwt", "sign", "--key", "k.json", "--iss", "i", "--aud", "a", "--sub", "s")
    assert "must be in the future" in fails(env, tmp_path, "jwt", "sign", "--key", "k.json",
                                            *claims_flags(exp=int(time.time()) - 10))
    assert private["kty"] == "EC"


def test_jwt_hs256_with_oct_key(env, tmp_path):
    private = make_jwk(env, tmp_path, ["--kty", "oct"])
    assert private["alg"] == "HS256"
    token = step(env, tmp_path, "jwt", "sign", "--key", "k.json", *claims_flags()).stdout
    checked = jwc_jws.JWS()
    checked.deserialize(token.strip())
    checked.verify(jwc_jwk.JWK(**private), alg="HS256")
    step(env, tmp_path, "jwt", "verify", "--key", "k.json", "--iss", "issuer", "--aud",
         "audience", input=token)


def test_jwk_create_encrypts_with_pbes2_600000(env, tmp_path, pw, monkeypatch):
    step(env, tmp_path, "jwk", "create", "k.pub", "k.key", "--password-file", str(pw))
    assert (tmp_path / "k.key").stat().st_mode & 0o777 == 0o600
    data = json.loads((tmp_path / "k.key").read_text())
    header = json.loads(base64.urlsafe_b64decode(data["protected"] + "=="))
    assert header["alg"] == "PBES2-HS256+A128KW" and header["enc"] == "A256GCM"
    assert header["p2c"] == 600_000 and header["cty"] == "jwk+json"
    # jwcrypto refuses p2c above 16,384 by default (a decryption-DoS guard); the cap is a
    # module setting, so the real 600,000 file is checked rather than a weaker one.
    monkeypatch.setattr(jwc_jwa, "default_max_pbkdf2_iterations", 1_000_000)
    theirs = jwc_jwe.JWE()
    theirs.deserialize(json.dumps(data), jwc_jwk.JWK.from_password(PASSWORD))
    private = json.loads(theirs.payload)
    public = json.loads((tmp_path / "k.pub").read_text())
    assert "d" in private and "d" not in public
    assert jwc_jwk.JWK(**public).thumbprint() == public["kid"] == private["kid"]
    thumb = step(env, tmp_path, "jwk", "thumbprint", input=json.dumps(public)).stdout.strip()
    assert thumb == public["kid"]


def test_pbes2_jwe_both_ways(env, tmp_path, pw, monkeypatch):
    monkeypatch.setattr(jwc_jwa, "default_max_pbkdf2_iterations", 1_000_000)
    out = step(env, tmp_path, "jwe", "encrypt", "--password-file", str(pw), input="secret data")
    theirs = jwc_jwe.JWE()
    theirs.deserialize(out.stdout, jwc_jwk.JWK.from_password(PASSWORD))
    assert theirs.payload == b"secret data"
    made_there = jwc_jwe.JWE(b"from jwcrypto", protected={
        "alg": "PBES2-HS256+A128KW", "enc": "A256GCM", "p2c": 600_000})
    made_there.add_recipient(jwc_jwk.JWK.from_password(PASSWORD))
    for serialized in (made_there.serialize(compact=True), made_there.serialize()):
        got = step(env, tmp_path, "jwe", "decrypt", "--password-file", str(pw), input=serialized)
        assert got.stdout == "from jwcrypto"
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("nope")
    assert "wrong password" in fails(env, tmp_path, "jwe", "decrypt", "--password-file",
                                     str(wrong), input=out.stdout)


@pytest.mark.parametrize(("flags", "alg"), [
    (["--kty", "EC", "--use", "enc"], "ECDH-ES"),
    (["--kty", "RSA", "--use", "enc"], "RSA-OAEP-256"),
    (["--kty", "oct", "--use", "enc"], "A256GCMKW"),
])
def test_key_jwe_both_ways(env, tmp_path, flags, alg):
    private = make_jwk(env, tmp_path, flags)
    assert private["alg"] == alg and private["use"] == "enc"
    key_file = "k.json" if private["kty"] == "oct" else "k.pub"
    out = step(env, tmp_path, "jwe", "encrypt", "--key", key_file, input="hello jwe").stdout
    theirs = jwc_jwe.JWE()
    theirs.deserialize(out, jwc_jwk.JWK(**private))
    assert theirs.payload == b"hello jwe"
    assert json.loads(theirs.objects["protected"])["enc"] == "A256GCM"
    made_there = jwc_jwe.JWE(b"from jwcrypto", protected={"alg": alg, "enc": "A256GCM"})
    made_there.add_recipient(jwc_jwk.JWK(**private))
    got = step(env, tmp_path, "jwe", "decrypt", "--key", "k.json",
               input=made_there.serialize(compact=True))
    assert got.stdout == "from jwcrypto"


def test_jws_sign_verify_inspect(env, tmp_path):
    private = make_jwk(env, tmp_path, KEY_FLAGS["EdDSA"])
    (tmp_path / "data.bin").write_bytes(b"not json at all")
    token = step(env, tmp_path, "jws", "sign", "data.bin", "--key", "k.json").stdout.strip()
    theirs = jwc_jws.JWS()
    theirs.deserialize(token)
    theirs.verify(jwc_jwk.JWK(**private).public(), alg="EdDSA")
    assert step(env, tmp_path, "jws", "verify", "--key", "k.pub",
                input=token).stdout == "not json at all"
    flat = step(env, tmp_path, "jws", "sign", "data.bin", "--key", "k.json", "--json").stdout
    assert step(env, tmp_path, "jws", "verify", "--key", "k.pub",
                input=flat).stdout == "not json at all"
    assert "--insecure" in fails(env, tmp_path, "jws", "inspect", input=token)
    shown = json.loads(step(env, tmp_path, "jws", "inspect", "--insecure", "--json",
                            input=token).stdout)
    assert shown["header"]["alg"] == "EdDSA" and shown["payload"] == "not json at all"
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert "validation failed" in fails(env, tmp_path, "jws", "verify", "--key", "k.pub",
                                        input=tampered)


# -- nacl --------------------------------------------------------------------------------------------

def test_nacl_box_round_trip_and_tamper(env, tmp_path):
    step(env, tmp_path, "nacl", "box", "keypair", "alice.pub", "alice.key")
    step(env, tmp_path, "nacl", "box", "keypair", "bob.pub", "bob.key")
    for name in ("alice.pub", "alice.key"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
        assert len((tmp_path / name).read_bytes()) == 32
    sealed = step(env, tmp_path, "nacl", "box", "seal", "nonce1", "bob.pub", "alice.key",
                  input="for bob").stdout
    opened = step(env, tmp_path, "nacl", "box", "open", "nonce1", "alice.pub", "bob.key",
                  input=sealed).stdout
    assert opened == "for bob"
    raw = bytearray(base64.b64decode(sealed))
    raw[-1] ^= 1
    assert "error authenticating input" in fails(env, tmp_path, "nacl", "box", "open", "nonce1",
                                                 "alice.pub", "bob.key",
                                                 input=base64.b64encode(raw).decode())
    assert "error authenticating input" in fails(env, tmp_path, "nacl", "box", "open", "nonce2",
                                                 "alice.pub", "bob.key", input=sealed)


def test_nacl_secretbox_and_sign(env, tmp_path):
    (tmp_path / "secret.key").write_bytes(os.urandom(32))
    sealed = step(env, tmp_path, "nacl", "secretbox", "seal", "n", "secret.key",
                  input="quiet").stdout
    assert step(env, tmp_path, "nacl", "secretbox", "open", "n", "secret.key",
                input=sealed).stdout == "quiet"
    step(env, tmp_path, "nacl", "sign", "keypair", "s.pub", "s.key")
    assert len((tmp_path / "s.key").read_bytes()) == 64
    signed = step(env, tmp_path, "nacl", "sign", "sign", "s.key", input="signed msg").stdout
    assert step(env, tmp_path, "nacl", "sign", "open", "s.pub",
                input=signed).stdout == "signed msg"
    raw = bytearray(base64.b64decode(signed))
    raw[-1] ^= 1
    assert "invalid signature" in fails(env, tmp_path, "nacl", "sign", "open", "s.pub",
                                        input=base64.b64encode(raw).decode())


@NEEDS_OPENSSL
def test_nacl_auth_matches_openssl_hmac_sha512_truncated(env, tmp_path):
    key = os.urandom(32)
    (tmp_path / "auth.key").write_bytes(key)
    message = "authenticated message\n"
    tag = step(env, tmp_path, "nacl", "auth", "digest", "auth.key", input=message).stdout.strip()
    theirs = openssl("mac", "-digest", "SHA512", "-macopt", f"hexkey:{key.hex()}", "HMAC",
                     input=message.encode()).decode().strip().lower()
    assert tag == theirs[:64]
    assert step(env, tmp_path, "nacl", "auth", "verify", "auth.key", tag,
                input=message).stdout == "ok\n"
    assert fails(env, tmp_path, "nacl", "auth", "verify", "auth.key", tag,
                 input=message + "!").strip().endswith("fail")
    assert "not hexadecimal" in fails(env, tmp_path, "nacl", "auth", "verify", "auth.key", "zz",
                                      input=message)
    (tmp_path / "short.key").write_bytes(key[:16])
    assert "expected 32 bytes" in fails(env, tmp_path, "nacl", "auth", "digest", "short.key",
                                        input=message)


# -- otp, hash, rand, base64, key --------------------------------------------------------------------

# RFC 6238 appendix B: time, TOTP; the secrets are ASCII "1234567890" repeated to the hash size.
RFC6238 = [(59, "94287082", "46119246", "90693936"),
           (1111111109, "07081804", "68084774", "25091201"),
           (1111111111, "14050471", "67062674", "99943326"),
           (1234567890, "89005924", "91819424", "93441116"),
           (2000000000, "69279037", "90698825", "38618901"),
           (20000000000, "65353130", "77737706", "47863826")]
SECRETS = {"SHA1": b"12345678901234567890", "SHA256": b"12345678901234567890" * 1 + b"123456789012",
           "SHA512": b"1234567890" * 6 + b"1234"}


def test_totp_rfc6238_vectors_in_process():
    from stepca_cli.crypto_misc import totp

    for at, *codes in RFC6238:
        for alg, code in zip(("SHA1", "SHA256", "SHA512"), codes):
            assert totp(SECRETS[alg], at, digits=8, alg=alg) == code


@pytest.mark.parametrize("alg", ["SHA1", "SHA256", "SHA512"])
def test_otp_verify_rfc6238_through_cli(env, tmp_path, alg):
    (tmp_path / "secret").write_text(base64.b32encode(SECRETS[alg]).decode())
    index = ["SHA1", "SHA256", "SHA512"].index(alg) + 1
    for at, *codes in RFC6238[:4]:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
        args = ["otp", "verify", "--secret", "secret", "--length", "8", "--alg", alg,
                "--time", when]
        assert step(env, tmp_path, *args, input=codes[index - 1] + "\n").stdout == "ok\n"
        wrong = str((int(codes[index - 1]) + 1) % 10**8).zfill(8)
        assert "fail" in fails(env, tmp_path, *args, input=wrong + "\n")


def test_otp_generate(env, tmp_path):
    secret = step(env, tmp_path, "otp", "generate").stdout.strip()
    assert len(base64.b32decode(secret + "=" * (-len(secret) % 8))) == 20
    url = step(env, tmp_path, "otp", "generate", "--issuer", "Example", "--account",
               "me@example.com", "--url").stdout.strip()
    assert url.startswith("otpauth://totp/Example:me%40example.com?")
    assert "period=30" in url and "digits=6" in url and "algorithm=SHA1" in url


@pytest.mark.skipif(shutil.which("zbarimg") is None, reason="needs zbarimg (zbar-tools)")
def test_otp_qr_code_decodes_to_the_url_holding_the_printed_secret(env, tmp_path):
    secret = step(env, tmp_path, "otp", "generate", "--issuer", "Smallstep Labs", "--account",
                  "jane@example.com", "--qr", "otp.png").stdout.strip()
    qr = tmp_path / "otp.png"
    assert qr.read_bytes().startswith(b"\x89PNG") and qr.stat().st_mode & 0o777 == 0o600
    decoded = subprocess.run(["zbarimg", "--raw", "-q", str(qr)], capture_output=True,
                             text=True, check=True).stdout.strip()
    assert decoded.startswith("otpauth://totp/Smallstep%20Labs:jane%40example.com?")
    assert f"secret={secret}" in decoded and "issuer=Smallstep+Labs" in decoded
    assert "'--issuer'" in fails(env, tmp_path, "otp", "generate", "--qr", "other.png")
    assert not (tmp_path / "other.png").exists()


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs sha256sum")
def test_hash_digest_matches_sha256sum(env, tmp_path):
    (tmp_path / "a.txt").write_bytes(b"hello\n")
    (tmp_path / "b.bin").write_bytes(os.urandom(5000))
    ours = step(env, tmp_path, "hash", "digest", "a.txt", "b.bin").stdout
    theirs = subprocess.run(["sha256sum", "a.txt", "b.bin"], cwd=tmp_path, capture_output=True,
                            text=True, check=True).stdout
    assert ours == theirs
    sha512 = step(env, tmp_path, "hash", "digest", "--alg", "sha512", "a.txt").stdout
    assert sha512.split()[0] == hashlib.sha512(b"hello\n").hexdigest()
    assert "--insecure" in fails(env, tmp_path, "hash", "digest", "--alg", "md5", "a.txt")
    want = hashlib.sha256(b"hello\n").hexdigest()
    assert step(env, tmp_path, "hash", "compare", want, "a.txt").stdout == "ok\n"
    assert fails(env, tmp_path, "hash", "compare", want, "b.bin").strip() == "fail"
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("x")
    first = step(env, tmp_path, "hash", "digest", "d").stdout
    (tmp_path / "d" / "x").write_text("y")
    assert step(env, tmp_path, "hash", "digest", "d").stdout != first


def test_rand_and_base64(env, tmp_path):
    assert len(step(env, tmp_path, "rand").stdout.strip()) == 64
    word = step(env, tmp_path, "rand", "20", "--format", "alphanumeric").stdout.strip()
    assert len(word) == 20 and word.isalnum()
    data = "binary?>>\u00ff"
    enc = step(env, tmp_path, "base64", input=data).stdout.strip()
    assert enc == base64.b64encode(data.encode()).decode()
    url_raw = step(env, tmp_path, "base64", "-u", "-r", input=data).stdout.strip()
    assert url_raw == base64.urlsafe_b64encode(data.encode()).rstrip(b"=").decode()
    assert step(env, tmp_path, "base64", "-d", input=enc).stdout == data
    assert step(env, tmp_path, "base64", "-d", "-u", input=url_raw).stdout == data


@NEEDS_OPENSSL
def test_key_public_format_fingerprint_inspect(env, tmp_path, pw):
    step(env, tmp_path, "keypair", "k.pub", "k.key", "--password-file", str(pw))
    pub = step(env, tmp_path, "key", "public", "k.key", "--password-file", str(pw)).stdout
    assert pub == (tmp_path / "k.pub").read_text()
    der = openssl("pkey", "-pubin", "-in", str(tmp_path / "k.pub"), "-outform", "DER")
    fp = step(env, tmp_path, "key", "fingerprint", "k.pub").stdout.strip()
    assert fp == hashlib.sha256(der).hexdigest()
    step(env, tmp_path, "key", "format", "k.pub", "--out", "k.der")
    assert (tmp_path / "k.der").read_bytes() == der
    jwk = json.loads(step(env, tmp_path, "key", "format", "k.pub", "--jwk").stdout)
    assert jwk["kty"] == "EC" and "d" not in jwk
    shown = step(env, tmp_path, "key", "inspect", "k.key", "--password-file", str(pw)).stdout
    assert shown.startswith("Private-Key: (256 bit)") and "Curve: P-256" in shown


# -- kdf ---------------------------------------------------------------------------------------------

def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


@pytest.mark.parametrize("alg", ["scrypt", "bcrypt", "argon2i", "argon2id"])
def test_kdf_hash_verified_elsewhere(env, tmp_path, alg):
    import argon2
    import bcrypt

    phc = step(env, tmp_path, "kdf", "hash", "--alg", alg, "pässword").stdout.strip()
    secret = "pässword".encode()
    if alg == "scrypt":
        _, name, params, salt, key = phc.split("$")
        ln, r, p = (int(v.split("=")[1]) for v in params.split(","))
        assert (name, ln, r, p, len(_unb64(salt))) == ("scrypt", 15, 8, 1, 16)
        assert hashlib.scrypt(secret, salt=_unb64(salt), n=1 << ln, r=r, p=p,
                              dklen=len(_unb64(key)), maxmem=64 << 20) == _unb64(key)
    elif alg == "bcrypt":
        assert phc.startswith("$2a$10$") and bcrypt.checkpw(secret, phc.encode())
    else:
        assert phc.startswith(f"${alg}$v=19$")
        assert argon2.PasswordHasher().verify(phc, secret)
    assert step(env, tmp_path, "kdf", "compare", phc, "pässword").stdout == "ok\n"
    assert fails(env, tmp_path, "kdf", "compare", phc, "password").strip() == "fail"


def test_kdf_compare_reads_hashes_made_elsewhere(env, tmp_path, pw):
    import argon2
    import bcrypt

    salt = os.urandom(16)
    key = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=1 << 10, r=8, p=2, dklen=24)
    made = [
        f"$scrypt$ln=10,r=8,p=2${base64.b64encode(salt).decode().rstrip('=')}$"
        f"{base64.b64encode(key).decode().rstrip('=')}",
        bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode(),
        argon2.PasswordHasher(time_cost=2, memory_cost=1024).hash(PASSWORD),
        argon2.PasswordHasher(type=argon2.Type.I, memory_cost=2048).hash(PASSWORD),
    ]
    for phc in made:
        assert step(env, tmp_path, "kdf", "compare", phc, "--password-file",
                    str(pw)).stdout == "ok\n", phc
        assert fails(env, tmp_path, "kdf", "compare", phc, "wrong").strip() == "fail"


def test_kdf_refusals(env, tmp_path):
    salt_key = "c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"
    assert "out of range" in fails(env, tmp_path, "kdf", "compare",
                                   f"$scrypt$ln=30,r=8,p=1${salt_key}", "x")
    assert "out of range" in fails(env, tmp_path, "kdf", "compare",
                                   f"$argon2id$v=19$m=99999999,t=1,p=4${salt_key}", "x")
    assert "not a scrypt, bcrypt, argon2i or argon2id" in fails(env, tmp_path, "kdf", "compare",
                                                                 "$md5$abc", "x")
    assert "invalid scrypt hash" in fails(env, tmp_path, "kdf", "compare", "$scrypt$ln=15", "x")
    assert "'--password-file'" in fails(env, tmp_path, "kdf", "hash")
    assert "72 bytes" in fails(env, tmp_path, "kdf", "hash", "--alg", "bcrypt", "x" * 73)


# -- jose format -------------------------------------------------------------------------------------

def test_jose_format_swaps_serializations_both_ways_with_jwcrypto(env, tmp_path):
    private = make_jwk(env, tmp_path, KEY_FLAGS["ES256"])
    theirs = jwc_jwk.JWK(**private)
    signed = jwc_jws.JWS(b"payload")
    signed.add_signature(theirs, alg="ES256", protected={"alg": "ES256"})
    compact = step(env, tmp_path, "jose", "format", input=signed.serialize()).stdout.strip()
    assert compact == signed.serialize(compact=True)
    back = json.loads(step(env, tmp_path, "jose", "format", input=compact).stdout)
    assert back == json.loads(signed.serialize())

    recipient = jwc_jwk.JWK(**make_jwk(env, tmp_path, ["--kty", "EC", "--use", "enc"], "enc"))
    sealed = step(env, tmp_path, "jwe", "encrypt", "--key", "enc.pub", input="secret").stdout
    jwe_compact = step(env, tmp_path, "jose", "format", input=sealed).stdout.strip()
    opened = jwc_jwe.JWE()
    opened.deserialize(jwe_compact, key=recipient)
    assert opened.payload == b"secret"
    assert json.loads(step(env, tmp_path, "jose", "format", input=jwe_compact).stdout) == \
        json.loads(sealed)

    for bad in ("a.b", "{]", '{"payload":"x","signatures":[]}', "[1]"):
        assert "error parsing the input" in fails(env, tmp_path, "jose", "format", input=bad)


# -- key sign / verify -------------------------------------------------------------------------------

KEY_SIGNING = {
    # name: (openssl genpkey args, our flags, openssl dgst/pkeyutl verify args)
    "P-256": (["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"], [], ["-sha256"]),
    "P-384": (["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"], [], ["-sha384"]),
    "RSA-sha512": (["-algorithm", "RSA"], ["--alg", "sha512"], ["-sha512"]),
    "RSA-PSS": (["-algorithm", "RSA"], ["--pss"],
                ["-sha256", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:auto"]),
    "Ed25519": (["-algorithm", "ED25519"], [], None),
}


@NEEDS_OPENSSL
@pytest.mark.parametrize("kind", list(KEY_SIGNING))
def test_key_sign_and_verify_both_ways_with_openssl(env, tmp_path, kind):
    genpkey, flags, dgst = KEY_SIGNING[kind]
    subprocess.run(["openssl", "genpkey", *genpkey, "-out", str(tmp_path / "k.pem")], check=True,
                   capture_output=True)
    openssl("pkey", "-in", str(tmp_path / "k.pem"), "-pubout", "-out", str(tmp_path / "k.pub"))
    (tmp_path / "data.txt").write_bytes(b"signed by step, checked by openssl\n")
    ours = step(env, tmp_path, "key", "sign", "--key", "k.pem", "data.txt", *flags).stdout.strip()
    (tmp_path / "ours.sig").write_bytes(base64.b64decode(ours))

    def openssl_verify(sig: str) -> subprocess.CompletedProcess:
        if dgst is None:
            args = ["pkeyutl", "-verify", "-pubin", "-inkey", "k.pub", "-rawin", "-in",
                    "data.txt", "-sigfile", sig]
        else:
            args = ["dgst", *dgst, "-verify", "k.pub", "-signature", sig, "data.txt"]
        return subprocess.run(["openssl", *args], cwd=tmp_path, capture_output=True, text=True)

    assert openssl_verify("ours.sig").returncode == 0
    if dgst is None:
        subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", "k.pem", "-rawin", "-in",
                        "data.txt", "-out", "theirs.sig"], cwd=tmp_path, check=True)
    else:
        subprocess.run(["openssl", "dgst", *dgst, "-sign", "k.pem", "-out", "theirs.sig",
                        "data.txt"], cwd=tmp_path, check=True)
    theirs = base64.b64encode((tmp_path / "theirs.sig").read_bytes()).decode()
    assert step(env, tmp_path, "key", "verify", "--key", "k.pub", "--sig", theirs, "data.txt",
                *flags).stdout == "true\n"
    (tmp_path / "data.txt").write_bytes(b"tampered\n")
    assert fails(env, tmp_path, "key", "verify", "--key", "k.pub", "--sig", ours, "data.txt",
                 *flags).strip() == "false"
    assert openssl_verify("ours.sig").returncode != 0


def test_key_sign_refusals(env, tmp_path, pw):
    step(env, tmp_path, "keypair", "k.pub", "k.key", "--password-file", str(pw))
    assert "is not a private key" in fails(env, tmp_path, "key", "sign", "--key", "k.pub",
                                           input="x")
    signature = step(env, tmp_path, "key", "sign", "--key", "k.key", "--password-file", str(pw),
                     input="x").stdout.strip()
    assert step(env, tmp_path, "key", "verify", "--key", "k.pub", "--signature", signature,
                input="x").stdout == "true\n"
    assert "base64" in fails(env, tmp_path, "key", "verify", "--key", "k.pub", "--sig", "%%",
                             input="x")
