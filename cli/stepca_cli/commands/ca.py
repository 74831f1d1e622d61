"""``step ca``: initialize and use a certificate authority."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from stepca.x509util import (
    encrypt_private_key,
    fingerprint,
    generate_key,
    load_certificates,
    subject_cn,
    write_private,
)

from stepca_cli import ui
from stepca_cli.client import CAClient, fetch_root
from stepca_cli.context import (
    StepCommand,
    normalize_ca_url,
    option_group,
    require,
    root_file,
    step_path,
)
from stepca_cli.crypto_common import general_names
from stepca_cli.errors import StepError, incompatible
from stepca_cli.lazy import Lazy, LazyCommands
from stepca_cli.plugin_loading import plugins_for

if TYPE_CHECKING:
    from stepca.provisioner_client import ClientFlag

    from stepca_cli.tokens import SignToken


_LIFECYCLE = "stepca_cli.commands.lifecycle"


@click.group(name="ca", commands=LazyCommands({
    "rekey": Lazy(f"{_LIFECYCLE}:rekey_command", "rekey a certificate"),
    "renew": Lazy(f"{_LIFECYCLE}:renew_command", "renew a certificate"),
    "revoke": Lazy(f"{_LIFECYCLE}:revoke", "revoke a certificate"),
    "provisioner": Lazy("stepca_cli.commands.provisioner:provisioner",
                        "create and manage the CA provisioners"),
}))
def ca() -> None:
    """initialize and manage a certificate authority"""


def ca_url_option(f: Any) -> Any:
    return click.option("--ca-url", metavar="URI",
                        help="URI of the targeted Step Certificate Authority.")(f)


def root_option(f: Any) -> Any:
    return click.option("--root", metavar="FILE",
                        help="The path to the PEM file used as the root certificate authority.")(f)


def force_option(f: Any) -> Any:
    return click.option("-f", "--force", is_flag=True,
                        help="Force the overwrite of files without asking.")(f)


def client_for(ctx: click.Context, ca_url: str | None, root: str | None) -> CAClient:
    url = normalize_ca_url(require(ctx, ca_url, "ca-url"))
    return CAClient(url, root=root_file(ctx, root))


# -- init ------------------------------------------------------------------------------------------

@ca.command(cls=StepCommand, reads_defaults=False)
@click.option("--name", help="The name of the new PKI.")
@click.option("--dns", multiple=True,
              help="The DNS name or IP address of the new CA (repeatable, or comma-separated).")
@click.option("--address", help="The address the new CA will listen on, e.g. :443 or "
                                "127.0.0.1:9000.")
@click.option("--provisioner", help="The name of the first provisioner.")
@click.option("--password-file", metavar="FILE",
              help="The file with the password to encrypt the CA keys (and the provisioner key).")
@click.option("--provisioner-password-file", metavar="FILE",
              help="The file with the password to encrypt the provisioner key.")
@click.option("--with-ca-url", metavar="URI", help="The ca-url written to defaults.json.")
@click.option("--deployment-type", type=click.Choice(["standalone", "linked", "hosted"],
                                                      case_sensitive=False),
              help="The deployment type; only standalone is available.")
@click.pass_context
def init(ctx: click.Context, name: str | None, dns: tuple[str, ...], address: str | None,
         provisioner: str | None, password_file: str | None,
         provisioner_password_file: str | None, with_ca_url: str | None,
         deployment_type: str | None) -> None:
    """initialize the CA PKI"""
    from stepca.config import ConfigError, split_address
    from stepca.pki import create_pki

    command = ctx.command_path
    if deployment_type and deployment_type.lower() != "standalone":
        raise StepError(f"deployment type '{deployment_type}' is not available: stepca runs "
                        "standalone CAs")
    steppath = step_path()
    if (steppath / "config" / "ca.json").exists():
        raise StepError(f"{steppath} already holds a CA ({steppath / 'config' / 'ca.json'}); "
                        "set STEPPATH to an empty folder or remove it first")
    if not ui.has_terminal():
        _require_init_flags(command, name=name, dns=dns, address=address,
                            provisioner=provisioner, password_file=password_file)
    if not name:
        ui.info("What would you like to name your new PKI?")
        name = ui.ask("✔ (e.g. Smallstep)", flag="name", command=command)
    names = [n.strip().strip("[]") for value in dns for n in value.replace(",", " ").split()]
    if not names:
        ui.info("What DNS names or IP addresses will clients use to reach your CA?")
        answer = ui.ask("✔ (e.g. ca.example.com[,10.1.2.3,etc.])", flag="dns", command=command)
        names = [n.strip().strip("[]") for n in answer.replace(",", " ").split()]
    if not names:
        raise StepError("at least one DNS name or IP address is required")
    if not address:
        ui.info("What IP and port will your new CA bind to? (:443 will bind to 0.0.0.0:443)")
        address = ui.ask("✔ (e.g. :443 or 127.0.0.1:443)", flag="address", command=command)
    try:
        split_address(address)
    except ConfigError as exc:
        raise StepError(str(exc)) from None
    if not provisioner:
        ui.info("What would you like to name the CA's first provisioner?")
        provisioner = ui.ask("✔ (e.g. you@smallstep.com)", flag="provisioner", command=command)
    if not provisioner:
        raise StepError("the provisioner name cannot be empty")
    password = ui.read_password_file(password_file, "password-file")
    if password is None:
        ui.info("Choose a password for your CA keys and first provisioner.")
        password = ui.new_password("✔ [leave empty and we'll generate one]",
                                   flag="password-file", command=command)
    if not password:
        raise StepError("the password cannot be empty")
    provisioner_password = (ui.read_password_file(provisioner_password_file,
                                                  "provisioner-password-file") or password)
    ca_url = normalize_ca_url(with_ca_url) if with_ca_url else None

    ui.info()
    ui.info("Generating root certificate... done!")
    ui.info("Generating intermediate certificate... done!")
    try:
        pki = create_pki(steppath, name=name, dns_names=names, address=address,
                         provisioner=provisioner, password=password,
                         provisioner_password=provisioner_password,
                         key_store=_software_key_store(steppath), ca_url=ca_url)
    except FileExistsError as exc:
        raise StepError(str(exc)) from None
    ui.info()
    ui.status("Root certificate", str(pki.root_crt))
    ui.status("Root private key", str(pki.root_key))
    ui.status("Root fingerprint", pki.fingerprint)
    ui.status("Intermediate certificate", str(pki.intermediate_crt))
    ui.status("Intermediate private key", str(pki.intermediate_key))
    ui.status("Database folder", str(pki.database.parent))
    ui.status("Default configuration", str(pki.defaults))
    ui.status("Certificate Authority configuration", str(pki.ca_config))
    ui.info()
    ui.info("Your PKI is ready to go. To generate certificates for individual services see "
            "'step help ca'.")


def _require_init_flags(command: str, **values: Any) -> None:
    """Without a terminal, name every flag a question would need, before printing anything."""
    missing = [f"'--{name.replace('_', '-')}'" for name, value in values.items() if not value]
    if len(missing) == 1:
        raise StepError(f"'{command}' requires the {missing[0]} flag (no terminal to ask on)")
    if missing:
        listed = ", ".join(missing[:-1]) + f" and {missing[-1]}"
        raise StepError(f"'{command}' requires the {listed} flags (no terminal to ask on)")


def _software_key_store(steppath: Path) -> Any:
    """The ``softkms`` key store, found through the plugin hook like any other."""
    from stepca.plugins import Plugins

    stores = Plugins.load().key_stores()
    return stores["softkms"].from_config({}, base_dir=steppath)


# -- root distribution -----------------------------------------------------------------------------

@ca.command(cls=StepCommand, reads_defaults=False)
@ca_url_option
@click.option("--fingerprint", metavar="FINGERPRINT",
              help="The SHA-256 fingerprint of the root certificate.")
@click.option("--install", is_flag=True,
              help="Also install the root in the system trust store and the NSS databases "
                   "found (as step certificate install does).")
@force_option
@click.option("--context", "context_name", metavar="NAME",
              help="The name of the context for the new authority (default: the CA's host "
                   "name); bootstrapping with a context makes it the current one.")
@click.option("--authority", metavar="NAME",
              help="The folder under $STEPPATH/authorities for the context (default: its "
                   "name).")
@click.option("--profile", metavar="NAME",
              help="The folder under $STEPPATH/profiles for the context (default: its name).")
@click.pass_context
def bootstrap(ctx: click.Context, ca_url: str | None, fingerprint: str | None, install: bool,
              force: bool, context_name: str | None, authority: str | None,
              profile: str | None) -> None:
    """initialize the environment to use the CA commands"""
    from stepca_cli import context as contexts
    from stepca_cli import truststores

    url = normalize_ca_url(require(ctx, ca_url, "ca-url"))
    fp = require(ctx, fingerprint, "fingerprint").lower().replace("-", "").replace(":", "")
    stores = truststores.select(installing=True) if install else []
    known = contexts.load_contexts()
    new_context = None
    if known or context_name or authority or profile or contexts.current_context():
        name = context_name or urlparse(url).hostname or ""
        new_context = contexts.Context(name, authority or name, profile or name)
        for label, value in (("context", new_context.name),
                             ("authority", new_context.authority),
                             ("profile", new_context.profile)):
            if not value or "/" in value or value in (".", ".."):
                raise StepError(f"invalid value '{value}' for flag '--{label}'")
        steppath = new_context.path
    else:
        steppath = contexts.base_path()
        if (steppath / "config" / "ca.json").exists():
            ui.info("⚠️  It looks like step is already configured to connect to an authority.\n"
                    "You can use 'contexts' to easily switch between teams and authorities.\n")
    root_path = steppath / "certs" / "root_ca.crt"
    defaults_path = steppath / "config" / "defaults.json"
    ui.check_overwrite(root_path, force)
    ui.check_overwrite(defaults_path, force)
    root = fetch_root(url, fp)
    if new_context is not None:
        contexts.save_contexts({**known, new_context.name: new_context})
        contexts.save_current(new_context.name)
    write_private(root_path, root.public_bytes(serialization.Encoding.PEM))
    defaults = {"ca-url": url, "fingerprint": fp, "root": str(root_path)}
    write_private(defaults_path, (json.dumps(defaults, indent=2) + "\n").encode(), mode=0o644)
    ui.info(f"The root certificate has been saved in {root_path}.")
    ui.info(f"The authority configuration has been saved in {defaults_path}.")
    if new_context is not None:
        profile_defaults = new_context.profile_path / "config" / "defaults.json"
        if not profile_defaults.exists():
            write_private(profile_defaults, b"{}", mode=0o600)
            ui.info(f"The profile configuration has been saved in {profile_defaults}.")
    for store in stores:
        store.add(root, truststores.entry_name(root, None))
        ui.info(f"The root certificate has been installed in {store.label}.")


@ca.command(cls=StepCommand)
@click.argument("root_file_arg", metavar="[ROOT-FILE]", required=False)
@ca_url_option
@click.option("--fingerprint", metavar="FINGERPRINT",
              help="The SHA-256 fingerprint of the root certificate.")
@force_option
@click.pass_context
def root(ctx: click.Context, root_file_arg: str | None, ca_url: str | None,
         fingerprint: str | None, force: bool) -> None:
    """download and validate the root certificate"""
    url = normalize_ca_url(require(ctx, ca_url, "ca-url"))
    fp = require(ctx, fingerprint, "fingerprint")
    if root_file_arg:
        ui.check_overwrite(Path(root_file_arg), force)
    cert = fetch_root(url, fp)
    data = cert.public_bytes(serialization.Encoding.PEM)
    if root_file_arg:
        write_private(Path(root_file_arg), data)
        ui.info(f"The root certificate has been saved in {root_file_arg}.")
    else:
        click.echo(data.decode(), nl=False)


def _bundle_command(name: str, path: str, saved: str) -> None:
    @ca.command(name=name, cls=StepCommand, help=f"download all the {name} certificates")
    @click.argument("out", metavar="[FILE]", required=False)
    @ca_url_option
    @root_option
    @force_option
    @click.pass_context
    def bundle(ctx: click.Context, out: str | None, ca_url: str | None, root: str | None,
               force: bool) -> None:
        client = client_for(ctx, ca_url, root)
        crts = client.get_json(path).get("crts") or []
        data = "".join(crts).encode()
        if out:
            ui.check_overwrite(Path(out), force)
            write_private(Path(out), data)
            ui.info(f"The {saved} bundle has been saved in {out}.")
        else:
            click.echo(data.decode(), nl=False)


_bundle_command("roots", "/roots", "root certificate")
_bundle_command("federation", "/federation", "federation certificate")


@ca.command(cls=StepCommand)
@ca_url_option
@root_option
@click.pass_context
def health(ctx: click.Context, ca_url: str | None, root: str | None) -> None:
    """get the status of the CA"""
    status = client_for(ctx, ca_url, root).get_json("/health").get("status")
    if status != "ok":
        raise StepError(f"the CA is not healthy: {status}")
    click.echo("ok")


# -- tokens and certificates -----------------------------------------------------------------------

token_options = option_group(
    click.option("--provisioner", "--issuer", "provisioner", metavar="NAME",
                 help="The provisioner to use."),
    click.option("--kid", metavar="KID", help="The provisioner key id to use."),
    click.option("--password-file", metavar="FILE",
                 help="The file with the password to decrypt the provisioner key."),
    click.option("--provisioner-password-file", metavar="FILE",
                 help="The file with the password to decrypt the provisioner key "
                      "(takes precedence over --password-file)."),
    click.option("--console", is_flag=True,
                 help="Complete a single sign-on (OIDC) flow in the terminal: print the URL to "
                      "open and read back where the browser was sent, instead of opening a "
                      "browser."),
    click.option("--offline", is_flag=True,
                 help="Make the token from ca.json, without contacting the CA."),
    click.option("--ca-config", metavar="FILE",
                 help="The ca.json to read with --offline."),
)


def _token_password(provisioner_password_file: str | None,
                    password_file: str | None) -> bytes | None:
    return (ui.read_password_file(provisioner_password_file, "provisioner-password-file")
            or ui.read_password_file(password_file, "password-file"))


def _offline_provisioners(ctx: click.Context, ca_config: str | None) -> list[dict[str, Any]]:
    path = Path(ca_config) if ca_config else step_path() / "config" / "ca.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StepError(f"error reading {path}: {exc}") from None
    return list((config.get("authority") or {}).get("provisioners") or [])


def _root_fingerprint(path: Path) -> str:
    try:
        return fingerprint(load_certificates(path.read_bytes())[0])
    except (OSError, ValueError, IndexError) as exc:
        raise StepError(f"error reading root {path}: {exc}") from None


def _make_sign_token(ctx: click.Context, *, subject: str, sans: list[str], ca_url: str,
                     root: Path, opts: dict[str, Any], audience_path: str = "/1.0/sign",
                     password_flag: str = "provisioner-password-file") -> SignToken:
    from stepca_cli.tokens import sign_token

    offline = opts["offline"]
    client = None if offline else CAClient(ca_url, root=root)
    return sign_token(
        client, ca_url=ca_url, subject=subject, sans=sans, provisioner=opts["provisioner"],
        kid=opts["kid"], key_file=opts.get("key"),
        password=_token_password(opts["provisioner_password_file"], opts["password_file"]),
        root_fingerprint=_root_fingerprint(root), not_before=opts.get("token_not_before"),
        not_after=opts.get("token_not_after"), command=ctx.command_path,
        plugins=plugins_for(ctx), given_flags=given_client_flags(opts),
        console=bool(opts.get("console")),
        offline_provisioners=_offline_provisioners(ctx, opts["ca_config"]) if offline else None,
        audience_path=audience_path, password_flag=password_flag)


def given_client_flags(opts: dict[str, Any]) -> list[ClientFlag]:
    """The flags on the command line whose meaning belongs to the provisioner's type."""
    flags: dict[ClientFlag, Any] = {
        "key": opts.get("key"), "password-file": opts.get("password_file"),
        "provisioner-password-file": opts.get("provisioner_password_file"),
        "console": opts.get("console")}
    return [flag for flag, value in flags.items() if value]


def _x5c_provisioner_error(ctx: click.Context, ca_url: str, root: Path,
                           opts: dict[str, Any]) -> StepError:
    """``--x5c-cert/--x5c-key`` without ``--renew`` pick an X5C provisioner, as in step."""
    listing = (_offline_provisioners(ctx, opts["ca_config"]) if opts["offline"]
               else CAClient(ca_url, root=root).provisioners())
    x5c = [p for p in listing if str(p.get("type", "")).upper() == "X5C"]
    if not x5c:
        return StepError("cannot create a new token: the CA does not have any provisioner "
                         "configured")
    return StepError(f"provisioner '{x5c[0].get('name')}' has type X5C: this step makes x5c "
                    "tokens only with --renew")


@ca.command(cls=StepCommand)
@click.argument("subject")
@token_options
@click.option("--san", multiple=True, help="A subject alternative name for the certificate "
                                           "(repeatable).")
@click.option("--revoke", is_flag=True,
              help="Make a token for a revocation request: <subject> is the serial number of "
                   "the certificate and the audience is the CA's /1.0/revoke.")
@click.option("--renew", is_flag=True,
              help="Make a renewal token signed with --x5c-key that carries --x5c-cert in its "
                   "x5cInsecure header; the audience is the CA's /1.0/renew.")
@click.option("--rekey", is_flag=True,
              help="Accepted as step accepts it: for X.509 a rekey token is a sign token "
                   "(rekeying is authorized by mutual TLS).")
@click.option("--x5c-cert", metavar="FILE",
              help="The certificate (chain) whose key signs the token, with --renew.")
@click.option("--x5c-key", metavar="FILE",
              help="The private key of --x5c-cert; --password-file opens it when it is "
                   "encrypted.")
@click.option("--key", metavar="FILE", help="Sign with this private key (JWK or PEM) instead "
                                            "of the CA's escrowed provisioner key.")
@click.option("--not-before", metavar="TIME|DURATION", help="The time the token becomes valid.")
@click.option("--not-after", metavar="TIME|DURATION", help="The time the token expires "
                                                          "(default 5m after --not-before).")
@click.option("--output-file", metavar="FILE", help="Write the token to FILE (0600).")
@ca_url_option
@root_option
@click.pass_context
def token(ctx: click.Context, subject: str, san: tuple[str, ...], revoke: bool, renew: bool,
          rekey: bool, x5c_cert: str | None, x5c_key: str | None, key: str | None,
          not_before: str | None, not_after: str | None, output_file: str | None,
          ca_url: str | None, root: str | None, **opts: Any) -> None:
    """generate an OTT granting access to the CA"""
    if revoke and san:
        raise incompatible("san", "revoke")
    url = normalize_ca_url(require(ctx, ca_url, "ca-url"))
    root_path = root_file(ctx, root)
    opts.update(key=key, token_not_before=not_before, token_not_after=not_after)
    if renew and not revoke:
        from stepca_cli.tokens import x5c_renew_token

        jwt = x5c_renew_token(require(ctx, x5c_cert, "x5c-cert"),
                              require(ctx, x5c_key, "x5c-key"),
                              _token_password(opts["provisioner_password_file"],
                                              opts["password_file"]),
                              ca_url=url, subject=subject, command=ctx.command_path)
    elif x5c_cert or x5c_key:
        raise _x5c_provisioner_error(ctx, url, root_path, opts)
    else:
        jwt = _make_sign_token(ctx, subject=subject, sans=list(san), ca_url=url,
                               root=root_path, opts=opts,
                               audience_path="/1.0/revoke" if revoke else "/1.0/sign",
                               # the flag step's `ca token` documents, and the seed uses
                               password_flag="password-file").token
    if output_file:
        write_private(Path(output_file), (jwt + "\n").encode())
    else:
        click.echo(jwt)


certificate_options = option_group(
    click.option("--token", metavar="TOKEN", help="The one-time token to use."),
    click.option("--not-before", metavar="TIME|DURATION",
                 help="The time the certificate becomes valid."),
    click.option("--not-after", metavar="TIME|DURATION",
                 help="The time the certificate expires (a duration counts from "
                      "--not-before)."),
    ca_url_option, root_option, force_option,
)


def _endpoint(ctx: click.Context, token: str | None, ca_url: str | None,
              root: str | None) -> tuple[str, Path]:
    """The CA's URL and root; a given token's audience names the CA when --ca-url does not."""
    if token and not ca_url:
        from stepca.jose import JOSEFormatError, parse_unverified

        try:
            aud = parse_unverified(token).claims.get("aud")
        except JOSEFormatError:
            raise StepError("the --token is not a JWT") from None
        aud = aud[0] if isinstance(aud, list) and aud else aud
        if isinstance(aud, str) and urlparse(aud).scheme == "https":
            ca_url = aud
    return normalize_ca_url(require(ctx, ca_url, "ca-url")), root_file(ctx, root)


def _sign(ctx: click.Context, *, csr: x509.CertificateSigningRequest, token: str, url: str,
          root: Path, not_before: str | None, not_after: str | None) -> list[str]:
    ui.status("CA", url)
    body = {"csr": csr.public_bytes(serialization.Encoding.PEM).decode(), "ott": token}
    if not_before:
        body["notBefore"] = not_before
    if not_after:
        body["notAfter"] = not_after
    answer = CAClient(url, root=root).post_json("/sign", body)
    chain = answer.get("certChain") or [answer.get("crt"), answer.get("ca")]
    return [c for c in chain if c]


@ca.command(cls=StepCommand)
@click.argument("subject")
@click.argument("crt_file", metavar="CRT-FILE")
@click.argument("key_file", metavar="KEY-FILE")
@certificate_options
@token_options
@click.option("--san", multiple=True, help="A subject alternative name (repeatable).")
@click.option("--kty", type=click.Choice(["EC", "OKP", "RSA"]), help="The key type (EC).")
@click.option("--curve", "--crv", "curve", help="The curve: P-256 (default), P-384, P-521, "
                                                "Ed25519.")
@click.option("--size", type=int, help="The RSA key size in bits (default 2048).")
@click.pass_context
def certificate(ctx: click.Context, subject: str, crt_file: str, key_file: str,
                token: str | None, not_before: str | None, not_after: str | None,
                ca_url: str | None, root: str | None, force: bool, san: tuple[str, ...],
                kty: str | None, curve: str | None, size: int | None, **opts: Any) -> None:
    """generate a new private key and certificate signed by the root certificate"""
    if crt_file == key_file:
        raise StepError(f"positional arguments <crt-file> and <key-file> cannot be equal in "
                        f"'{ctx.command_path} <subject> <crt-file> <key-file>'")
    if curve and not kty:
        raise StepError("flag '--curve' requires the '--kty' flag")
    if size and not kty:
        raise StepError("flag '--size' requires the '--kty' flag")
    if token and san:
        raise incompatible("san", "token")
    if token and opts["offline"]:
        raise incompatible("offline", "token")
    sans = list(dict.fromkeys(san)) or [subject]
    if token:
        from stepca.jose import JOSEFormatError, parse_unverified

        try:
            claims = parse_unverified(token).claims
        except JOSEFormatError:
            raise StepError("the --token is not a JWT") from None
        token_subject = str(claims.get("sub", ""))
        if token_subject.lower() != subject.lower():
            raise StepError(f"token subject '{token_subject}' and argument '{subject}' do not "
                            "match")
        sans = [s for s in claims.get("sans") or [subject] if isinstance(s, str)]
    crt_path, key_path = Path(crt_file), Path(key_file)
    ui.check_overwrite(crt_path, force)
    ui.check_overwrite(key_path, force)
    try:
        key = generate_key(kty or "EC", curve=curve or ("Ed25519" if kty == "OKP" else "P-256"),
                           size=size or 2048)
    except ValueError as exc:
        raise StepError(str(exc)) from None
    if kty == "RSA" and (size or 2048) < 2048:
        raise StepError("flag '--size' requires at least 2048 unless '--insecure' flag is "
                        "provided")
    url, root_path = _endpoint(ctx, token, ca_url, root)
    if not token:
        made = _make_sign_token(ctx, subject=subject, sans=sans, ca_url=url, root=root_path,
                                opts=opts)
        token = made.token
        if not san and made.csr_sans:  # step's cloud defaults: the instance's own names
            sans = made.csr_sans
    csr = build_csr(key, subject, sans)
    chain = _sign(ctx, csr=csr, token=token, url=url, root=root_path, not_before=not_before,
                  not_after=not_after)
    write_private(crt_path, "".join(chain).encode())
    write_private(key_path, encrypt_private_key(key, None))
    ui.status("Certificate", crt_file)
    ui.status("Private Key", key_file)


@ca.command(cls=StepCommand)
@click.argument("csr_file", metavar="CSR-FILE")
@click.argument("crt_file", metavar="CRT-FILE")
@certificate_options
@token_options
@click.pass_context
def sign(ctx: click.Context, csr_file: str, crt_file: str, token: str | None,
         not_before: str | None, not_after: str | None, ca_url: str | None, root: str | None,
         force: bool, **opts: Any) -> None:
    """generate a new certificate signing a certificate request"""
    try:
        csr = x509.load_pem_x509_csr(Path(csr_file).read_bytes())
    except (OSError, ValueError) as exc:
        raise StepError(f"error reading {csr_file}: {exc}") from None
    subject = subject_cn(csr.subject)
    from stepca.x509util import SANs
    requested = SANs.of_csr(csr)
    sans = [*requested.dns, *map(str, requested.ips), *requested.emails, *requested.uris]
    if not subject and not sans:
        raise StepError(f"{csr_file} has neither a common name nor subject alternative names")
    crt_path = Path(crt_file)
    ui.check_overwrite(crt_path, force)
    url, root_path = _endpoint(ctx, token, ca_url, root)
    if not token:
        token = _make_sign_token(ctx, subject=subject or sans[0], sans=sans or [subject],
                                 ca_url=url, root=root_path, opts=opts).token
    chain = _sign(ctx, csr=csr, token=token, url=url, root=root_path, not_before=not_before,
                  not_after=not_after)
    write_private(crt_path, "".join(chain).encode())
    ui.status("Certificate", crt_file)


def build_csr(key: Any, subject: str, sans: list[str]) -> x509.CertificateSigningRequest:
    from stepca.x509util import signature_hash

    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
    names = general_names(sans)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, signature_hash(key))
