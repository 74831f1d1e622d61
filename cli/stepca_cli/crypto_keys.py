"""``step crypto keypair``, ``change-pass`` and ``key format|public|inspect|fingerprint``."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import click
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from stepca import jose, x509util

from stepca_cli import crypto_common as common
from stepca_cli import ui
from stepca_cli.errors import StepError

KTY_OPTION = click.option("--kty", help="The key type: EC (default), OKP or RSA.")
CURVE_OPTION = click.option("--curve", "--crv", "curve",
                            help="The curve: P-256 (default), P-384, P-521 (EC) or Ed25519 (OKP).")
SIZE_OPTION = click.option("--size", type=int, help="RSA key size in bits (default 2048).")


@click.command()
@click.argument("pub_file")
@click.argument("priv_file")
@KTY_OPTION
@CURVE_OPTION
@SIZE_OPTION
@click.option("--from-jwk", "from_jwk", help="Create the PEM keys from this JWK file.")
@click.option("--password-file", help="File with the password to encrypt the private key.")
@click.option("--no-password", is_flag=True, help="Do not encrypt the private key (needs "
              "--insecure).")
@click.option("--insecure", is_flag=True, help="Allow insecure choices (no password, small RSA).")
@click.option("--force", "-f", is_flag=True, help="Overwrite existing files without asking.")
def keypair(pub_file: str, priv_file: str, kty: str | None, curve: str | None, size: int | None,
            from_jwk: str | None, password_file: str | None, no_password: bool, insecure: bool,
            force: bool) -> None:
    """generate a public/private keypair in PEM format"""
    if os.path.abspath(pub_file) == os.path.abspath(priv_file):
        raise StepError("positional arguments <pub_file> and <priv_file> cannot be equal in "
                        "'step crypto keypair <pub_file> <priv_file>'")
    if from_jwk:
        if kty or curve or size is not None:
            raise StepError("flag '--from-jwk' is incompatible with '--kty'")
        key = common.load_any_key(common.read_file(from_jwk), from_jwk, password_file)
        if isinstance(key, bytes):
            raise StepError(f"{from_jwk} holds a symmetric key: it has no PEM keypair")
    else:
        key = common.new_key(*common.key_details(kty, curve, size, insecure))
    if not common.is_private(key):
        raise StepError(f"{from_jwk} holds only a public key")
    # Everything that can fail (password, overwrite checks) happens before the first write.
    # --from-jwk already used --password-file to decrypt; ask again only for a new password.
    password = common.encrypt_password(None if from_jwk else password_file, "the private key",
                                       no_password=no_password, insecure=insecure)
    ui.check_overwrite(Path(pub_file), force)
    ui.check_overwrite(Path(priv_file), force)
    common.write_file(pub_file, common.public_pem(key), force=True)
    ui.info(f"Your public key has been saved in {pub_file}.")
    common.write_file(priv_file, x509util.encrypt_private_key(key, password), force=True)
    ui.info(f"Your private key has been saved in {priv_file}.")


@click.command("change-pass")
@click.argument("key_file")
@click.option("--password-file", help="File with the current password.")
@click.option("--new-password-file", help="File with the new password.")
@click.option("--out", "--output-file", "out", help="Write the key here instead of in place.")
@click.option("--no-password", is_flag=True, help="Store the key unencrypted (needs --insecure).")
@click.option("--insecure", is_flag=True, help="Allow --no-password.")
@click.option("--force", "-f", is_flag=True, help="Overwrite the output without asking.")
def change_pass(key_file: str, password_file: str | None, new_password_file: str | None,
                out: str | None, no_password: bool, insecure: bool, force: bool) -> None:
    """change password of an encrypted private key (PEM or JWK format)"""
    common.insecure_password_flags(no_password, insecure)
    data = common.read_file(key_file)
    target = out or key_file
    if b"-----BEGIN" in data:
        key = common.load_pem_key(data, key_file, password_file)
        if not common.is_private(key):
            raise StepError(f"{key_file} is not a private key")
        password = common.encrypt_password(new_password_file, target, no_password=no_password,
                                           insecure=insecure, flag="new-password-file")
        output = x509util.encrypt_private_key(key, password)
    else:
        jwk = common.parse_jwk_text(data.decode("utf-8", "replace"), key_file, password_file)
        password = common.encrypt_password(new_password_file, target, no_password=no_password,
                                           insecure=insecure, flag="new-password-file")
        if password is None:
            output = (common.dump_json(jwk) + "\n").encode()
        else:
            jwe = jose.encrypt_pbes2(json.dumps(jwk).encode(), password)
            output = (common.dump_json(jose.jwe_compact_to_json(jwe)) + "\n").encode()
    # A private key is always written 0600 (step writes new PEM files 0644; we do not copy that).
    common.write_file(target, output, force=force)
    ui.info(f"Your key has been saved in {target}.")


# -- step crypto key ---------------------------------------------------------------------------------

@click.group()
def key() -> None:
    """manage keys"""


@key.command("public")
@click.argument("key_file", required=False)
@click.option("--password-file", help="File with the password of an encrypted private key.")
@click.option("--out", "--output-file", "out", help="Write the public key to this file.")
@click.option("--force", "-f", is_flag=True, help="Overwrite the output without asking.")
def key_public(key_file: str | None, password_file: str | None, out: str | None,
               force: bool) -> None:
    """print the public key of a public or private key (PEM or JWK)"""
    data = common.read_input(key_file)
    pem = common.public_pem(common.load_any_key(data, key_file or "-", password_file))
    _emit(pem, out, force, "public key")


@key.command("format")
@click.argument("key_file", required=False)
@click.option("--pem", "out_format", flag_value="pem", help="Output PEM.")
@click.option("--der", "out_format", flag_value="der", help="Output DER.")
@click.option("--jwk", "out_format", flag_value="jwk", help="Output a JWK.")
@click.option("--ssh", "out_format", flag_value="ssh", help="Output an OpenSSH public key.")
@click.option("--pkcs8", is_flag=True, help="Use PKCS#8 for private keys (the default here).")
@click.option("--password-file", help="File with the password of the input key.")
@click.option("--new-password-file", help="File with the password to encrypt the output key.")
@click.option("--no-password", is_flag=True, help="Do not encrypt a private output key.")
@click.option("--insecure", is_flag=True, help="Allow --no-password.")
@click.option("--out", "--output-file", "out", help="Write to this file instead of stdout.")
@click.option("--force", "-f", is_flag=True, help="Overwrite the output without asking.")
def key_format(key_file: str | None, out_format: str | None, pkcs8: bool,
               password_file: str | None, new_password_file: str | None, no_password: bool,
               insecure: bool, out: str | None, force: bool) -> None:
    """reformat a public or private key (PEM, DER, JWK, OpenSSH); PEM<->DER by default"""
    data = common.read_input(key_file)
    name = key_file or "-"
    loaded = common.load_any_key(data, name, password_file)
    if isinstance(loaded, bytes):
        raise StepError("symmetric (oct) keys cannot be reformatted")
    private = common.is_private(loaded)
    out_format = out_format or ("der" if b"-----BEGIN" in data else "pem")
    if out_format == "jwk":
        jwk = common.jwk_of_key(loaded, private=private)
        if private:
            password = common.encrypt_password(new_password_file, "the JWK",
                                               no_password=no_password, insecure=insecure,
                                               flag="new-password-file")
            if password is not None:
                jwe = jose.encrypt_pbes2(json.dumps(jwk).encode(), password)
                jwk = jose.jwe_compact_to_json(jwe)  # type: ignore[assignment]
        _emit((common.dump_json(jwk) + "\n").encode(), out, force, "key")
        return
    if out_format == "ssh":
        pub = common.public_of(loaded).public_bytes(serialization.Encoding.OpenSSH,
                                                    serialization.PublicFormat.OpenSSH)
        _emit(pub + b"\n", out, force, "public key")
        return
    if not private:
        enc = serialization.Encoding.PEM if out_format == "pem" else serialization.Encoding.DER
        _emit(loaded.public_bytes(enc, serialization.PublicFormat.SubjectPublicKeyInfo), out,
              force, "public key")
        return
    if out_format == "der":
        # DER cannot carry step's encryption; it is plaintext PKCS#8, so it needs --insecure.
        if not (no_password and insecure):
            raise StepError("DER private keys are not encrypted: use '--no-password --insecure'")
        _emit(loaded.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()), out, force, "private key")
        return
    password = common.encrypt_password(new_password_file, "the private key",
                                       no_password=no_password, insecure=insecure,
                                       flag="new-password-file")
    _emit(x509util.encrypt_private_key(loaded, password), out, force, "private key")


@key.command("inspect")
@click.argument("key_file", required=False)
@click.option("--password-file", help="File with the password of an encrypted private key.")
def key_inspect(key_file: str | None, password_file: str | None) -> None:
    """print the details of a public or private key"""
    data = common.read_input(key_file)
    loaded = common.load_any_key(data, key_file or "-", password_file)
    if isinstance(loaded, bytes):
        click.echo(f"Symmetric key: ({len(loaded) * 8} bit)")
        return
    private = common.is_private(loaded)
    pub = common.public_of(loaded)
    kind = "Private-Key" if private else "Public-Key"
    if isinstance(pub, ec.EllipticCurvePublicKey):
        curve = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}.get(
            pub.curve.name, pub.curve.name)
        nums = pub.public_numbers()
        width = (pub.curve.key_size + 7) // 8
        lines = [f"{kind}: ({pub.curve.key_size} bit)", f"Curve: {curve}",
                 f"X: {nums.x.to_bytes(width, 'big').hex()}",
                 f"Y: {nums.y.to_bytes(width, 'big').hex()}"]
    elif isinstance(pub, rsa.RSAPublicKey):
        nums = pub.public_numbers()
        lines = [f"{kind}: ({pub.key_size} bit)", f"Modulus: {nums.n:x}",
                 f"Exponent: {nums.e} (0x{nums.e:x})"]
    elif isinstance(pub, ed25519.Ed25519PublicKey):
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        lines = [f"{kind}: (256 bit)", "Curve: Ed25519", f"Public: {raw.hex()}"]
    else:
        raise StepError("unsupported key type")
    click.echo("\n".join(lines))


@key.command("fingerprint")
@click.argument("key_file", required=False)
@click.option("--password-file", help="File with the password of an encrypted private key.")
@click.option("--format", "fmt", default="hex", show_default=True,
              type=click.Choice(["hex", "base64", "base64-url", "base64-raw", "base64-url-raw"]),
              help="How to print the fingerprint.")
def key_fingerprint(key_file: str | None, password_file: str | None, fmt: str) -> None:
    """print the SHA-256 fingerprint of a key's PKIX public key (DER)"""
    data = common.read_input(key_file)
    pub = common.public_of(common.load_any_key(data, key_file or "-", password_file))
    der = pub.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    click.echo(format_digest(hashlib.sha256(der).digest(), fmt))



# -- key sign / verify -------------------------------------------------------------------------------

_RSA_HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
_CURVE_HASHES = {"secp256r1": hashes.SHA256, "secp384r1": hashes.SHA384,
                 "secp521r1": hashes.SHA512}


def _signing_scheme(key: Any, alg: str, pss: bool, *, verifying: bool) -> tuple[Any, ...]:
    """The ``sign``/``verify`` arguments after the data: EC hashes by curve, RSA by ``--alg``
    (PKCS #1 v1.5, or PSS with ``--pss``), Ed25519 signs the message itself."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        if key.curve.name not in _CURVE_HASHES:
            raise StepError(f"unsupported elliptic curve {key.curve.name}")
        return (ec.ECDSA(_CURVE_HASHES[key.curve.name]()),)
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        digest = _RSA_HASHES[alg]()
        if not pss:
            return padding.PKCS1v15(), digest
        salt = padding.PSS.AUTO if verifying else padding.PSS.DIGEST_LENGTH
        return padding.PSS(mgf=padding.MGF1(digest), salt_length=salt), digest
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return ()
    raise StepError("unsupported key type: EC, RSA or Ed25519 keys sign and verify")


@key.command("sign")
@click.argument("file", required=False)
@click.option("--key", "key_file", required=True, help="The private key to sign with.")
@click.option("--password-file", help="File with the password of an encrypted private key.")
@click.option("--alg", default="sha256", show_default=True, type=click.Choice(list(_RSA_HASHES)),
              help="The hash for RSA signatures (EC keys hash by curve).")
@click.option("--pss", is_flag=True, help="Sign with RSA-PSS instead of PKCS #1 v1.5.")
@click.option("--raw", is_flag=True, help="Print the raw signature instead of base64.")
def key_sign(file: str | None, key_file: str, password_file: str | None, alg: str, pss: bool,
             raw: bool) -> None:
    """sign a file or stdin with a private key and print the signature"""
    message = common.read_input(file)
    private = common.load_any_key(common.read_file(key_file), key_file, password_file)
    if not common.is_private(private) or isinstance(private, bytes):
        raise StepError(f"{key_file} is not a private key")
    signature = private.sign(message, *_signing_scheme(private, alg, pss, verifying=False))
    if raw:
        _emit(signature, None, False, "signature")
    else:
        click.echo(base64.b64encode(signature).decode())


@key.command("verify")
@click.argument("file", required=False)
@click.option("--key", "key_file", required=True,
              help="The public key (or a certificate, or a private key) to verify with.")
@click.option("--signature", "--sig", "signature", required=True,
              help="The base64 signature.")
@click.option("--alg", default="sha256", show_default=True, type=click.Choice(list(_RSA_HASHES)),
              help="The hash of RSA signatures (EC keys hash by curve).")
@click.option("--pss", is_flag=True, help="Verify an RSA-PSS signature.")
@click.option("--password-file", help="File with the password, if --key is an encrypted "
                                      "private key.")
def key_verify(file: str | None, key_file: str, signature: str, alg: str, pss: bool,
               password_file: str | None) -> None:
    """verify the signature of a file or stdin; prints true, or fails with false"""
    message = common.read_input(file)
    try:
        sig = base64.b64decode(signature, validate=True)
    except ValueError:
        raise StepError("error decoding base64 signature") from None
    data = common.read_file(key_file)
    if b"-----BEGIN CERTIFICATE-----" in data:
        public = x509util.load_certificates(data)[0].public_key()
    else:
        public = common.public_of(common.load_any_key(data, key_file, password_file))
    try:
        public.verify(sig, message, *_signing_scheme(public, alg, pss, verifying=True))
    except InvalidSignature:
        raise StepError("false") from None
    click.echo("true")


def format_digest(digest: bytes, fmt: str) -> str:
    if fmt == "hex":
        return digest.hex()
    encoded = (base64.urlsafe_b64encode(digest) if "url" in fmt
               else base64.standard_b64encode(digest)).decode()
    return encoded.rstrip("=") if fmt.endswith("raw") else encoded


def _emit(data: bytes, out: str | None, force: bool, what: str) -> None:
    if out:
        common.write_file(out, data, force=force)
        ui.info(f"Your {what} has been saved in {out}.")
        return
    common.write_stdout(data)
