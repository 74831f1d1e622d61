"""``step crypto jwk|jwt sign/verify|jws|jwe``: all JOSE work goes through ``stepca.jose``."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives import serialization
from stepca import jose
from stepca.x509util import load_certificates

from stepca_cli import crypto_common as common
from stepca_cli import ui
from stepca_cli.context import option_group
from stepca_cli.errors import StepError

SIG_DEFAULTS = {"RSA": "RS256", "OKP": "EdDSA", "oct": "HS256",
                "P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
ENC_DEFAULTS = {"EC": "ECDH-ES", "OKP": "ECDH-ES", "RSA": "RSA-OAEP-256", "oct": "A256GCMKW"}
LEEWAY = 60  # seconds of clock skew tolerated on exp/nbf/iat, as go-jose's default leeway


def _stdin_text() -> str:
    return common.read_stdin_bytes().decode("utf-8", "replace")


def _parse_jwk_stdin(password_file: str | None = None) -> dict[str, Any]:
    text = _stdin_text()
    if not text.strip():
        raise StepError("error reading the JWK from stdin: nothing was read")
    return common.parse_jwk_text(text, "-", password_file)


# -- jwk ---------------------------------------------------------------------------------------------

@click.group()
def jwk() -> None:
    """create JWKs (JSON Web Keys) and manage JWK Key Sets"""


@jwk.command("create")
@click.argument("public_jwk_file")
@click.argument("private_jwk_file")
@click.option("--kty", "--type", "kty", help="EC (default), RSA, OKP or oct.")
@click.option("--crv", "--curve", "curve", help="P-256 (default), P-384, P-521 or Ed25519.")
@click.option("--size", type=int, help="RSA size in bits (default 2048) or oct size in bytes "
              "(default 32).")
@click.option("--alg", help="The algorithm the key is for (default by key type and use).")
@click.option("--use", default="sig", show_default=True, type=click.Choice(["sig", "enc"]),
              help="The intended use of the key.")
@click.option("--kid", help="The key id (default: the RFC 7638 thumbprint).")
@click.option("--from-pem", help="Create the JWK from this PEM key instead of a new one.")
@click.option("--password-file", help="File with the password to encrypt the private JWK.")
@click.option("--no-password", is_flag=True, help="Store the private JWK unencrypted.")
@click.option("--insecure", is_flag=True, help="Allow insecure choices (no password, small keys).")
@click.option("--subtle", is_flag=True, help="Allow unusual alg/use combinations.")
@click.option("--force", "-f", is_flag=True, help="Overwrite existing files without asking.")
def jwk_create(public_jwk_file: str, private_jwk_file: str, kty: str | None, curve: str | None,
               size: int | None, alg: str | None, use: str, kid: str | None,
               from_pem: str | None, password_file: str | None, no_password: bool,
               insecure: bool, subtle: bool, force: bool) -> None:
    """create a JWK (JSON Web Key)"""
    if os.path.abspath(public_jwk_file) == os.path.abspath(private_jwk_file):
        raise StepError("positional arguments <public_jwk_file> and <private_jwk_file> cannot be "
                        "equal in 'step crypto jwk create <public_jwk_file> <private_jwk_file>'")
    if from_pem:
        key = common.load_pem_key(common.read_file(from_pem), from_pem, None)
        if not common.is_private(key):
            raise StepError(f"{from_pem} is not a private key")
    else:
        key = common.new_key(*common.key_details(kty, curve, size, insecure, allow_oct=True))
    base = common.jwk_of_key(key, private=True, use=None)
    alg = alg or _default_alg(base, use)
    if alg == "none" or (alg in jose.HMAC_ALGS and base["kty"] != "oct" and not subtle):
        raise StepError(f"invalid value '{alg}' for flag '--alg' with this key type")
    private = common.jwk_of_key(key, private=True, kid=kid, alg=alg, use=use)
    public = jose.public_jwk(private)
    password = common.encrypt_password(password_file, "the private JWK",
                                       no_password=no_password, insecure=insecure)
    ui.check_overwrite(Path(public_jwk_file), force)
    ui.check_overwrite(Path(private_jwk_file), force)
    common.write_file(public_jwk_file, (common.dump_json(public) + "\n").encode(), force=True)
    ui.info(f"Your public key has been saved in {public_jwk_file}.")
    if password is None:
        body = common.dump_json(private)
    else:
        jwe = jose.encrypt_pbes2(json.dumps(private).encode(), password)
        body = common.dump_json(jose.jwe_compact_to_json(jwe))
    common.write_file(private_jwk_file, (body + "\n").encode(), force=True)
    ui.info(f"Your private key has been saved in {private_jwk_file}.")


def _default_alg(data: dict[str, Any], use: str) -> str:
    if use == "enc":
        return ENC_DEFAULTS[data["kty"]]
    return SIG_DEFAULTS[data["kty"] if data["kty"] != "EC" else data["crv"]]


@jwk.command("public")
@click.option("--password-file", help="Password file, if the JWK on stdin is encrypted.")
def jwk_public(password_file: str | None) -> None:
    """extract the public JWK of a private JWK read on stdin"""
    data = _parse_jwk_stdin(password_file)
    if data.get("kty") == "oct":
        raise StepError("a symmetric (oct) JWK has no public key")
    click.echo(common.dump_json(jose.public_jwk(data)))


@jwk.command("thumbprint")
@click.option("--password-file", help="Password file, if the JWK on stdin is encrypted.")
def jwk_thumbprint(password_file: str | None) -> None:
    """print the RFC 7638 thumbprint of a JWK read on stdin"""
    try:
        click.echo(jose.thumbprint(_parse_jwk_stdin(password_file)))
    except jose.JOSEFormatError as exc:
        raise StepError(str(exc)) from None


@jwk.group()
def keyset() -> None:
    """add, remove and find JWKs in a JWK Set"""


def _read_keyset(path: str, *, create: bool = False) -> dict[str, Any]:
    if create and not os.path.exists(path):
        return {"keys": []}
    text = common.read_file(path).decode("utf-8", "replace")
    try:
        data = json.loads(text) if text.strip() else {"keys": []}
    except ValueError:
        raise StepError(f"error reading {path}: not a JWK set") from None
    if not isinstance(data, dict) or not isinstance(data.setdefault("keys", []), list):
        raise StepError(f"error reading {path}: not a JWK set")
    return data


def _write_keyset(path: str, data: dict[str, Any]) -> None:
    common.write_file(path, (common.dump_json(data) + "\n").encode(), force=True)


@keyset.command("add")
@click.argument("jwks_file")
def keyset_add(jwks_file: str) -> None:
    """add a JWK read on stdin to a JWK Set (the file is created if needed)"""
    data = _read_keyset(jwks_file, create=True)
    new = _parse_jwk_stdin()
    if not new.get("kid"):
        new["kid"] = jose.thumbprint(new)
    if any(isinstance(k, dict) and k.get("kid") == new["kid"] for k in data["keys"]):
        raise StepError(f"error adding key: a key with kid {new['kid']} already exists")
    data["keys"].append(new)
    _write_keyset(jwks_file, data)


@keyset.command("remove")
@click.argument("jwks_file")
@click.option("--kid", required=True, help="The kid of the key to remove.")
def keyset_remove(jwks_file: str, kid: str) -> None:
    """remove the JWK with a kid from a JWK Set"""
    data = _read_keyset(jwks_file)
    data["keys"] = [k for k in data["keys"] if not (isinstance(k, dict) and k.get("kid") == kid)]
    _write_keyset(jwks_file, data)


@keyset.command("list")
@click.argument("jwks_file")
def keyset_list(jwks_file: str) -> None:
    """list the kids of the keys in a JWK Set"""
    for k in _read_keyset(jwks_file)["keys"]:
        if isinstance(k, dict):
            click.echo(str(k.get("kid", "")))


@keyset.command("find")
@click.argument("jwks_file")
@click.option("--kid", required=True, help="The kid of the key to print.")
def keyset_find(jwks_file: str, kid: str) -> None:
    """print the JWK with a kid from a JWK Set"""
    for k in _read_keyset(jwks_file)["keys"]:
        if isinstance(k, dict) and k.get("kid") == kid:
            click.echo(common.dump_json(k))


# -- keys for signing and verifying ----------------------------------------------------------------

def _signing_material(key_path: str | None, jwks: str | None, kid: str | None,
                      password_file: str | None, alg: str | None) -> tuple[Any, str, dict[str, Any]]:
    data = common.load_key_jwk(key_path, jwks, kid, password_file)
    key = common.key_of_jwk(data, key_path or jwks or "-")
    if not common.is_private(key):
        raise StepError("cannot sign with a public key: use the private key")
    key_alg = data.get("alg") or jose.default_alg(data) or ("HS256" if data["kty"] == "oct"
                                                            else None)
    if alg and data.get("alg") and alg != data["alg"]:
        raise StepError(f"alg '{alg}' does not match the alg on the key '{data['alg']}'")
    alg = alg or key_alg
    if not alg:
        raise StepError("cannot pick a signing algorithm for this key: use '--alg'")
    return key, alg, data


def _verify_material(key_path: str | None, jwks: str | None, kid: str | None,
                     alg: str | None, token_header: dict[str, Any]) -> tuple[Any, str]:
    kid = kid or (str(token_header["kid"]) if jwks and token_header.get("kid") else None)
    data = common.load_key_jwk(key_path, jwks, kid, None)
    key = common.key_of_jwk(data, key_path or jwks or "-")
    if not isinstance(key, bytes) and common.is_private(key):
        key = key.public_key()
    expected = alg or data.get("alg") or jose.default_alg(data) or str(token_header.get("alg"))
    if alg and data.get("alg") and alg != data["alg"]:
        raise StepError(f"alg '{alg}' does not match the alg on the key '{data['alg']}'")
    return key, str(expected)


def _parse_headers(values: tuple[str, ...]) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    for value in values:
        name, sep, content = value.partition("=")
        if not sep or not name:
            raise StepError(f"invalid value '{value}' for flag '--header'; expected key=value")
        headers[name] = content
    return headers


# ``--x5c-cert/--x5c-key/--x5c-insecure``: sign with a certificate's key and embed the
# chain, as step does for X5C provisioner tokens.
_x5c_options = option_group(
    click.option("--x5c-cert", metavar="FILE",
                 help="Certificate (chain) in PEM format to store in the 'x5c' header."),
    click.option("--x5c-key", metavar="FILE",
                 help="The private key of the --x5c-cert certificate, used to sign."),
    click.option("--x5c-insecure", is_flag=True,
                 help="Use the header 'x5cInsecure' instead of 'x5c'."),
)


def _signing_material_or_x5c(key_path: str | None, jwks: str | None, kid: str | None,
                             password_file: str | None, alg: str | None, x5c_cert: str | None,
                             x5c_key: str | None, x5c_insecure: bool
                             ) -> tuple[Any, str, dict[str, Any], dict[str, Any]]:
    """The signing key, algorithm and JWK, and the certificate headers to add."""
    if not (x5c_cert or x5c_key):
        if x5c_insecure:
            raise StepError("flag '--x5c-insecure' requires the '--x5c-cert' flag")
        return (*_signing_material(key_path, jwks, kid, password_file, alg), {})
    if not (x5c_cert and x5c_key):
        raise StepError("flag '--x5c-cert' and flag '--x5c-key' must be used together")
    if key_path or jwks:
        raise StepError("flag '--x5c-cert' cannot be used with '--key' or '--jwks'")
    try:
        chain = load_certificates(common.read_file(x5c_cert))
    except ValueError:
        chain = []
    if not chain:
        raise StepError(f"error reading {x5c_cert}: no PEM certificate found")
    key, alg, data = _signing_material(x5c_key, None, kid, password_file, alg)
    public_der = serialization.PublicFormat.SubjectPublicKeyInfo
    if (key.public_key().public_bytes(serialization.Encoding.DER, public_der)
            != chain[0].public_key().public_bytes(serialization.Encoding.DER, public_der)):
        raise StepError(f"the key in {x5c_key} does not match the certificate in {x5c_cert}")
    encoded = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
               for c in chain]
    return key, alg, data, {"x5cInsecure" if x5c_insecure else "x5c": encoded}


# -- jwt ---------------------------------------------------------------------------------------------

def _time_flag(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise StepError(f"invalid value '{value}' for flag '--{name}'; expected a unix "
                        "timestamp") from None


@click.command("sign")
@click.argument("claims_file", required=False)
@click.option("--key", "key_path", help="The key to sign with (PEM, JWK or encrypted JWK).")
@click.option("--jwks", help="A JWK Set holding the key (use with --kid).")
@click.option("--kid", help="The kid of the key in --jwks, and of the token header.")
@click.option("--iss", help="The issuer claim.")
@click.option("--aud", multiple=True, help="The audience claim (repeatable).")
@click.option("--sub", help="The subject claim.")
@click.option("--exp", help="Expiration as a unix timestamp.")
@click.option("--nbf", help="Not-before as a unix timestamp (default now).")
@click.option("--iat", help="Issued-at as a unix timestamp (default now).")
@click.option("--jti", help="The token id (default random).")
@click.option("--alg", help="The signature algorithm (default from the key).")
@click.option("--header", "headers", multiple=True, help="An extra header as key=value.")
@click.option("--password-file", help="File with the password of an encrypted key.")
@click.option("--subtle", is_flag=True, help="Allow tokens without iss/aud/sub/exp.")
@click.option("--insecure", is_flag=True, help="Allow '--alg none' (an unsigned token).")
@_x5c_options
def jwt_sign(claims_file: str | None, key_path: str | None, jwks: str | None, kid: str | None,
             iss: str | None, aud: tuple[str, ...], sub: str | None, exp: str | None,
             nbf: str | None, iat: str | None, jti: str | None, alg: str | None,
             headers: tuple[str, ...], password_file: str | None, subtle: bool,
             insecure: bool, x5c_cert: str | None, x5c_key: str | None,
             x5c_insecure: bool) -> None:
    """create a signed JWT; claims from a JSON file (or stdin with '-') and flags"""
    claims: dict[str, Any] = {}
    if claims_file:
        raw = common.read_input(claims_file).strip()
        try:
            claims = json.loads(raw) if raw else {}
        except ValueError:
            raise StepError("error parsing the claims: not valid JSON") from None
        if not isinstance(claims, dict):
            raise StepError("error parsing the claims: not a JSON object")
    now = int(time.time())
    for name, value in (("iss", iss), ("sub", sub), ("jti", jti)):
        if value:
            claims[name] = value
    if aud:
        claims["aud"] = aud[0] if len(aud) == 1 else list(aud)
    for name, value in (("exp", exp), ("nbf", nbf), ("iat", iat)):
        parsed = _time_flag(value, name)
        if parsed is not None:
            claims[name] = parsed
    claims.setdefault("nbf", now)
    claims.setdefault("iat", now)
    claims.setdefault("jti", os.urandom(32).hex())
    if not subtle:
        for name in ("iss", "aud", "sub", "exp"):
            if not claims.get(name):
                raise StepError(f"flag '--{name}' is required unless the '--subtle' flag is "
                                "provided")
        if not isinstance(claims["exp"], int) or claims["exp"] <= now:
            raise StepError("flag '--exp' must be in the future unless the '--subtle' flag is "
                            "provided")
    header = {"typ": "JWT", **_parse_headers(headers)}
    payload = json.dumps(claims, separators=(",", ":")).encode()
    if alg and alg.lower() == "none":
        if not insecure:
            raise StepError("'--alg none' requires the '--insecure' flag")
        header = {**header, "alg": "none"}
        click.echo(f"{jose.b64url_encode(json.dumps(header).encode())}."
                   f"{jose.b64url_encode(payload)}.")
        return
    key, alg, data, certificates = _signing_material_or_x5c(
        key_path, jwks, kid, password_file, alg, x5c_cert, x5c_key, x5c_insecure)
    header.update(certificates)
    if data.get("kid"):
        header.setdefault("kid", data["kid"])
    try:
        click.echo(jose.sign_compact(payload, key, alg, header))
    except jose.SignatureError as exc:
        raise StepError(f"error signing: {exc}") from None


def _read_token() -> str:
    raw = _stdin_text().strip()
    if not raw:
        raise StepError("error reading the token from stdin: nothing was read")
    return raw


@click.command("verify")
@click.option("--key", "key_path", help="The key to verify with (PEM, JWK).")
@click.option("--jwks", help="A JWK Set holding the key (the token's kid picks it).")
@click.option("--kid", help="The kid of the key in --jwks.")
@click.option("--iss", help="The expected issuer.")
@click.option("--aud", help="The expected audience.")
@click.option("--alg", help="The expected algorithm (default from the key).")
@click.option("--subtle", is_flag=True, help="Do not require --iss and --aud.")
@click.option("--no-exp-check", is_flag=True, help="Do not check exp/nbf (needs --insecure).")
@click.option("--insecure", is_flag=True, help="Allow --no-exp-check.")
def jwt_verify(key_path: str | None, jwks: str | None, kid: str | None, iss: str | None,
               aud: str | None, alg: str | None, subtle: bool, no_exp_check: bool,
               insecure: bool) -> None:
    """verify a JWT read on stdin and print its header and payload"""
    if no_exp_check and not insecure:
        raise StepError("flag '--no-exp-check' requires the '--insecure' flag")
    if not subtle:
        for name, value in (("iss", iss), ("aud", aud)):
            if not value:
                raise StepError(f"flag '--{name}' is required unless the '--subtle' flag is "
                                "provided")
    raw = _read_token()
    try:
        token = jose.parse_unverified(raw)
    except jose.JOSEFormatError as exc:
        raise StepError(f"error parsing token: {exc}") from None
    if token.alg.lower() in ("", "none"):
        raise StepError("validation failed: the token is unsigned (alg none)")
    key, expected = _verify_material(key_path, jwks, kid, alg, token.header)
    try:
        jose.verify_compact(token.raw, key, expected)
    except jose.SignatureError as exc:
        raise StepError(f"validation failed: {exc}") from None
    _check_claims(token.claims, iss, aud, check_time=not no_exp_check)
    click.echo(common.dump_json({"header": token.header, "payload": token.claims,
                                 "signature": token.raw.rsplit(".", 1)[1]}))


def _check_claims(claims: dict[str, Any], iss: str | None, aud: str | None, *,
                  check_time: bool) -> None:
    if iss is not None and claims.get("iss") != iss:
        raise StepError(f"validation failed: invalid issuer claim (iss): want {iss}, got "
                        f"{claims.get('iss')}")
    if aud is not None:
        audiences = claims.get("aud")
        audiences = [audiences] if isinstance(audiences, str) else (audiences or [])
        if aud not in audiences:
            raise StepError(f"validation failed: invalid audience claim (aud): {aud} is not in "
                            f"{audiences}")
    if not check_time:
        return
    now = time.time()
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if isinstance(exp, (int, float)) and now > exp + LEEWAY:
        raise StepError("validation failed: token is expired (exp)")
    if isinstance(nbf, (int, float)) and now < nbf - LEEWAY:
        raise StepError("validation failed: token not valid yet (nbf)")


# -- jws ---------------------------------------------------------------------------------------------

@click.group()
def jws() -> None:
    """sign and verify data using JSON Web Signature (JWS)"""


@jws.command("sign")
@click.argument("payload_file", required=False)
@click.option("--key", "key_path", help="The key to sign with (PEM, JWK or encrypted JWK).")
@click.option("--jwks", help="A JWK Set holding the key (use with --kid).")
@click.option("--kid", help="The kid of the key in --jwks.")
@click.option("--alg", help="The signature algorithm (default from the key).")
@click.option("--typ", help="The typ header.")
@click.option("--cty", help="The cty header.")
@click.option("--header", "headers", multiple=True, help="An extra header as key=value.")
@click.option("--json", "as_json", is_flag=True, help="Print the flattened JSON serialization.")
@click.option("--password-file", help="File with the password of an encrypted key.")
@_x5c_options
def jws_sign(payload_file: str | None, key_path: str | None, jwks: str | None, kid: str | None,
             alg: str | None, typ: str | None, cty: str | None, headers: tuple[str, ...],
             as_json: bool, password_file: str | None, x5c_cert: str | None,
             x5c_key: str | None, x5c_insecure: bool) -> None:
    """sign a payload (file, or stdin) as a JWS"""
    payload = common.read_input(payload_file)
    key, alg, data, certificates = _signing_material_or_x5c(
        key_path, jwks, kid, password_file, alg, x5c_cert, x5c_key, x5c_insecure)
    header = {**_parse_headers(headers), **certificates}
    for name, value in (("typ", typ), ("cty", cty), ("kid", data.get("kid"))):
        if value:
            header.setdefault(name, value)
    try:
        token = jose.sign_compact(payload, key, alg, header)
    except jose.SignatureError as exc:
        raise StepError(f"error signing: {exc}") from None
    click.echo(common.dump_json(jose.jws_compact_to_json(token)) if as_json else token)


def _jws_candidates(raw: str) -> list[str]:
    raw = raw.strip()
    if raw.startswith("{"):
        try:
            return jose.jws_json_to_compacts(json.loads(raw))
        except (ValueError, AttributeError) as exc:
            raise StepError(f"error parsing JWS: {exc}") from None
    return [raw]


def _jws_output(compact: str, as_json: bool) -> None:
    header, payload, _ = jose.split_compact_jws(compact)
    if as_json:
        click.echo(common.dump_json({"header": header,
                                     "payload": payload.decode("utf-8", "replace"),
                                     "signature": compact.rsplit(".", 1)[1]}))
        return
    common.write_stdout(payload)


@jws.command("verify")
@click.option("--key", "key_path", help="The key to verify with (PEM, JWK).")
@click.option("--jwks", help="A JWK Set holding the key (the header's kid picks it).")
@click.option("--kid", help="The kid of the key in --jwks.")
@click.option("--alg", help="The expected algorithm (default from the key).")
@click.option("--json", "as_json", is_flag=True, help="Print header, payload and signature.")
def jws_verify(key_path: str | None, jwks: str | None, kid: str | None, alg: str | None,
               as_json: bool) -> None:
    """verify a JWS (compact or JSON) read on stdin and print its payload"""
    errors = []
    for compact in _jws_candidates(_read_token()):
        try:
            header, _, _ = jose.split_compact_jws(compact)
            if str(header.get("alg", "none")).lower() == "none":
                raise jose.SignatureError("the JWS is unsigned (alg none)")
            key, expected = _verify_material(key_path, jwks, kid, alg, header)
            jose.verify_compact(compact, key, expected)
        except (jose.SignatureError, jose.JOSEFormatError) as exc:
            errors.append(str(exc))
            continue
        _jws_output(compact, as_json)
        return
    raise StepError(f"validation failed: {'; '.join(errors)}")


@jws.command("inspect")
@click.option("--insecure", is_flag=True, help="Required: the signature is not verified.")
@click.option("--json", "as_json", is_flag=True, help="Print header, payload and signature.")
def jws_inspect(insecure: bool, as_json: bool) -> None:
    """print the payload of a JWS read on stdin without verifying it"""
    if not insecure:
        raise StepError("'step crypto jws inspect' requires the '--insecure' flag")
    candidates = _jws_candidates(_read_token())
    try:
        _jws_output(candidates[0], as_json)
    except jose.JOSEFormatError as exc:
        raise StepError(f"error parsing JWS: {exc}") from None


# -- jwe ---------------------------------------------------------------------------------------------

@click.group()
def jwe() -> None:
    """encrypt and decrypt data and keys using JSON Web Encryption (JWE)"""


@jwe.command("encrypt")
@click.option("--key", "key_path", help="The recipient's public key (PEM or JWK) or an oct JWK.")
@click.option("--jwks", help="A JWK Set holding the key (use with --kid).")
@click.option("--kid", help="The kid of the key in --jwks.")
@click.option("--alg", help="Key management algorithm (default from the key; "
              "PBES2-HS256+A128KW with --password-file).")
@click.option("--enc", default="A256GCM", show_default=True, help="Content encryption.")
@click.option("--typ", help="The typ header.")
@click.option("--cty", help="The cty header.")
@click.option("--password-file", help="Encrypt with a password (PBES2) instead of a key.")
def jwe_encrypt(key_path: str | None, jwks: str | None, kid: str | None, alg: str | None,
                enc: str, typ: str | None, cty: str | None, password_file: str | None) -> None:
    """encrypt stdin to a JWE (JSON serialization)"""
    plaintext = common.read_stdin_bytes()
    extra = {name: value for name, value in (("typ", typ), ("cty", cty)) if value}
    if password_file or alg == jose.PBES2_ALG:
        if key_path or jwks:
            raise StepError("flag '--password-file' is incompatible with '--key'")
        if enc != jose.PBES2_ENC or typ:
            raise StepError("password encryption supports only '--enc A256GCM' and no '--typ'")
        password = common.encrypt_password(password_file, "the data", no_password=False,
                                           insecure=False)
        assert password is not None
        compact = jose.encrypt_pbes2(plaintext, password, content_type=cty)
    else:
        data = common.load_key_jwk(key_path, jwks, kid, None)
        public = data if data.get("kty") == "oct" else jose.public_jwk(data)
        alg = alg or (data["alg"] if data.get("alg") in jose.JWE_KEY_ALGS
                      else ENC_DEFAULTS.get(str(data.get("kty")), ""))
        if data.get("kid"):
            extra.setdefault("kid", data["kid"])
        try:
            compact = jose.encrypt_jwe(plaintext, public, alg=alg, enc=enc, headers=extra)
        except jose.JOSEFormatError as exc:
            raise StepError(f"error encrypting: {exc}") from None
    click.echo(common.dump_json(jose.jwe_compact_to_json(compact)))


@jwe.command("decrypt")
@click.option("--key", "key_path", help="The private key (PEM, JWK or encrypted JWK).")
@click.option("--jwks", help="A JWK Set holding the key (use with --kid).")
@click.option("--kid", help="The kid of the key in --jwks.")
@click.option("--password-file", help="Password of a PBES2 JWE, or of an encrypted --key.")
def jwe_decrypt(key_path: str | None, jwks: str | None, kid: str | None,
                password_file: str | None) -> None:
    """decrypt a JWE (compact or JSON) read on stdin and print the plaintext"""
    try:
        compact = jose.read_jwe(_stdin_text())
        header = jose.jwe_header(compact)
    except jose.JOSEFormatError as exc:
        raise StepError(f"error parsing JWE: {exc}") from None
    try:
        if header.get("alg") == jose.PBES2_ALG:
            if key_path or jwks:
                raise StepError("the JWE is password-encrypted: use '--password-file'")
            plaintext = jose.decrypt_pbes2(compact, common.decrypt_password(password_file, "-"))
        else:
            data = common.load_key_jwk(key_path, jwks, kid or header.get("kid"), password_file)
            plaintext = jose.decrypt_jwe(compact, data)
    except jose.JOSEFormatError as exc:
        raise StepError(f"error decrypting: {exc}") from None
    except ValueError as exc:
        raise StepError(f"error decrypting: {exc}") from None
    common.write_stdout(plaintext)


# -- jose format -------------------------------------------------------------------------------------

@click.group("jose")
def jose_group() -> None:
    """collection of JOSE utilities"""


@jose_group.command("format")
def jose_format() -> None:
    """swap a JWS or JWE read on stdin between the compact and the JSON serialization"""
    raw = _stdin_text().strip()
    if not raw:
        raise StepError("error reading from stdin: nothing was read")
    try:
        if raw.startswith("{"):
            try:
                data = json.loads(raw)
            except ValueError:
                raise jose.JOSEFormatError("not valid JSON") from None
            if not isinstance(data, dict):
                raise jose.JOSEFormatError("not a JSON object")
            if "ciphertext" in data:
                click.echo(jose.jwe_json_to_compact(data))
                return
            compacts = jose.jws_json_to_compacts(data)
            if len(compacts) != 1:
                raise jose.JOSEFormatError("a JWS with several signatures has no compact form")
            click.echo(compacts[0])
        elif raw.count(".") == 4:
            click.echo(json.dumps(jose.jwe_compact_to_json(raw), separators=(",", ":")))
        elif raw.count(".") == 2:
            click.echo(json.dumps(jose.jws_compact_to_json(raw), separators=(",", ":")))
        else:
            raise jose.JOSEFormatError("not a compact JWS or JWE")
    except jose.JOSEFormatError as exc:
        raise StepError(f"error parsing the input: {exc}") from None
