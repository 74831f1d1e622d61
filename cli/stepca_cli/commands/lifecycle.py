"""``step ca renew``, ``step ca rekey``, ``step ca revoke`` and
``step certificate needs-renewal``."""

from __future__ import annotations

import json
import os
import random
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from stepca.timeutil import format_duration, parse_duration, utcnow
from stepca.x509util import write_private
from stepca_cli import ui
from stepca_cli.client import CAClient
from stepca_cli.commands.ca import (_offline_provisioners, _root_fingerprint, _token_password,
                                    ca_url_option, force_option, given_client_flags,
                                    root_option, token_options)
from stepca_cli.context import StepCommand, normalize_ca_url, require, root_file
from stepca_cli.errors import StepError
from stepca_cli.plugin_loading import plugins_for
from stepca_cli.renewal import Credentials, next_renewal, post, renew
from stepca_cli.tokens import sign_token


def _duration(value: str | None, flag: str) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError:
        raise StepError(f"invalid value '{value}' for flag '--{flag}'") from None


def _log(level: str, message: str) -> None:
    stamp = datetime.now().strftime("%Y/%m/%d %H:%M:%S")
    click.echo(f"{level}: {stamp} {message}", err=level == "ERROR")
    (sys.stderr if level == "ERROR" else sys.stdout).flush()


class Hooks:
    """What runs after each renewal: a signal to a process, then a command."""

    def __init__(self, pid: int | None, pid_file: str | None, signum: int,
                 command: str | None) -> None:
        self.pid, self.pid_file, self.signum = pid, pid_file, signum
        self.command = shlex.split(command) if command else None

    def run(self) -> None:
        pid = self.pid
        if self.pid_file:
            try:
                pid = int(Path(self.pid_file).read_text().strip())
            except (OSError, ValueError) as exc:
                raise StepError(f"error reading --pid-file {self.pid_file}: {exc}") from None
        if pid:
            try:
                os.kill(pid, self.signum)
            except OSError as exc:
                raise StepError(f"error signaling process {pid}: {exc.strerror}") from None
        if self.command:
            try:
                # no shell: the command is split like a shell would, then run directly
                subprocess.run(self.command, check=True)
            except (OSError, subprocess.CalledProcessError) as exc:
                raise StepError(f"error running --exec {shlex.join(self.command)}: {exc}") \
                    from None


def daemon_options(verb: str, verbing: str, noun: str) -> Callable[[Any], Any]:
    """``--daemon`` and what follows each success: ``step ca renew`` and ``step ca rekey`` offer
    the same options, worded for their own verb."""
    options = [
        click.option("--daemon", is_flag=True, help=f"Keep running, {verbing} before each expiry."),
        click.option(f"--{verb}-period", metavar="DURATION",
                     help=f"With --daemon: {verb} every DURATION."),
        click.option("--retry-interval", metavar="DURATION", default="1m",
                     help=f"With --daemon: wait this long after a failed {noun} (1m)."),
        click.option("--exec", "exec_command", metavar="COMMAND",
                     help=f"Run COMMAND after each {noun}."),
        click.option("--pid", type=click.IntRange(min=1),
                     help=f"Signal this process after {noun}."),
        click.option("--pid-file", metavar="FILE",
                     help="Signal the process whose pid FILE holds."),
        click.option("--signal", "signum", type=int, default=int(signal.SIGHUP),
                     help="The signal for --pid/--pid-file (1, SIGHUP)."),
    ]

    def apply(command: Any) -> Any:
        for option in reversed(options):
            command = option(command)
        return command
    return apply


@click.command(name="renew", cls=StepCommand)
@click.argument("crt_file", metavar="CRT-FILE")
@click.argument("key_file", metavar="KEY-FILE")
@ca_url_option
@root_option
@force_option
@click.option("--mtls", type=click.BOOL, is_flag=False, flag_value="true", default="true",
              metavar="[=BOOL]", help="Renew over mutual TLS (default); --mtls=false uses a "
                                      "token signed by the certificate's key instead.")
@click.option("--no-mtls", "no_mtls", is_flag=True, help="Same as --mtls=false.")
@click.option("--out", "--output-file", "out", metavar="FILE",
              help="Write the new certificate to FILE instead of CRT-FILE.")
@click.option("--expires-in", metavar="DURATION",
              help="Renew only if the certificate expires within DURATION.")
@click.option("--password-file", metavar="FILE", help="The password of KEY-FILE, if encrypted.")
@daemon_options("renew", "renewing", "renewal")
@click.pass_context
def renew_command(ctx: click.Context, crt_file: str, key_file: str, ca_url: str | None,
                  root: str | None, force: bool, mtls: bool, no_mtls: bool, out: str | None,
                  expires_in: str | None, password_file: str | None, daemon: bool,
                  renew_period: str | None, retry_interval: str, exec_command: str | None,
                  pid: int | None, pid_file: str | None, signum: int) -> None:
    """renew a certificate"""
    if renew_period and not daemon:
        raise StepError("flag '--renew-period' requires the '--daemon' flag")
    if renew_period and expires_in:
        raise StepError("flag '--renew-period' and flag '--expires-in' are mutually exclusive")
    if pid and pid_file:
        raise StepError("flag '--pid' and flag '--pid-file' are mutually exclusive")
    url = normalize_ca_url(require(ctx, ca_url, "ca-url"))
    root_path = root_file(ctx, root)
    credentials = Credentials(Path(crt_file), Path(key_file),
                              ui.read_password_file(password_file, "password-file"))
    target = Path(out or crt_file)
    within = _duration(expires_in, "expires-in")
    period = _duration(renew_period, "renew-period")
    retry = _duration(retry_interval, "retry-interval") or timedelta(minutes=1)
    hooks = Hooks(pid, pid_file, signum, exec_command)
    use_mtls = mtls and not no_mtls
    leaf = credentials.chain()[0]
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    if within is not None and within > lifetime:
        raise StepError(f"flag '--expires-in' must be at most the certificate's lifetime "
                        f"({format_duration(lifetime)})")
    if period is not None and period >= lifetime:
        raise StepError("flag '--renew-period' must be shorter than the certificate's lifetime")

    def renew_once() -> None:
        try:
            chain = renew(url, root_path, credentials, mtls=use_mtls)
        except StepError as exc:
            raise StepError(f"error renewing certificate: {exc}") from None
        write_private(target, "".join(chain).encode())
        if target != credentials.crt_file:
            credentials.crt_file = target

    if daemon:
        _daemon(renew_once, credentials, hooks, within=within, period=period, retry=retry)
        return
    if not force and out is None and within is None:
        ui.check_overwrite(target, force)
    if within is not None:
        remaining = leaf.not_valid_after_utc - utcnow()
        jitter = within / 20 * random.random()
        if remaining > within + jitter:
            ui.info(f"certificate not renewed: expires in {format_duration(remaining)}")
            return
    renew_once()
    ui.info(f"Your certificate has been saved in {target}.")
    hooks.run()


def _daemon(renew_once: Any, credentials: Credentials, hooks: Hooks, *,
            within: timedelta | None, period: timedelta | None, retry: timedelta,
            done: str = "renewed") -> None:
    """Renew (or rekey) before each expiry until SIGTERM or SIGINT; SIGHUP does it at once."""
    wake, stop = threading.Event(), threading.Event()

    def on_hup(*_: Any) -> None:
        wake.set()

    def on_stop(*_: Any) -> None:
        stop.set()
        wake.set()

    signal.signal(signal.SIGHUP, on_hup)
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    delay = next_renewal(credentials.chain()[0], expires_in=within, renew_period=period)
    _log("INFO", f"first renewal in {format_duration(delay)}")
    while True:
        wake.wait(delay.total_seconds())
        wake.clear()
        if stop.is_set():
            return
        try:
            renew_once()
        except StepError as exc:
            _log("ERROR", str(exc))
            delay = retry
            continue
        delay = next_renewal(credentials.chain()[0], expires_in=within, renew_period=period)
        _log("INFO", f"certificate {done}, next in {format_duration(delay)}")
        try:
            hooks.run()
        except StepError as exc:
            _log("ERROR", str(exc))



@click.command(name="rekey", cls=StepCommand)
@click.argument("crt_file", metavar="CRT-FILE")
@click.argument("key_file", metavar="KEY-FILE")
@click.option("--out-cert", metavar="FILE",
              help="Write the new certificate to FILE instead of CRT-FILE.")
@click.option("--out-key", metavar="FILE",
              help="Write the new private key to FILE instead of KEY-FILE.")
@click.option("--private-key", metavar="FILE",
              help="Rekey to this private key instead of a new random one; it is not written "
                   "out again unless --out-key is given.")
@ca_url_option
@root_option
@click.option("--password-file", metavar="FILE",
              help="The password of KEY-FILE and of --private-key, if encrypted.")
@click.option("--expires-in", metavar="DURATION",
              help="Rekey only if the certificate expires within DURATION.")
@force_option
@click.option("--kty", type=click.Choice(["EC", "OKP", "RSA"]), help="The new key's type (EC).")
@click.option("--curve", "--crv", "curve", help="The curve: P-256 (default), P-384, P-521, "
                                                "Ed25519.")
@click.option("--size", type=int, help="The RSA key size in bits (default 2048).")
@daemon_options("rekey", "rekeying", "rekey")
@click.pass_context
def rekey_command(ctx: click.Context, crt_file: str, key_file: str, out_cert: str | None,
                  out_key: str | None, private_key: str | None, ca_url: str | None,
                  root: str | None, password_file: str | None, expires_in: str | None,
                  force: bool, kty: str | None, curve: str | None, size: int | None,
                  daemon: bool, rekey_period: str | None, retry_interval: str,
                  exec_command: str | None, pid: int | None, pid_file: str | None,
                  signum: int) -> None:
    """rekey a certificate"""
    from stepca.x509util import encrypt_private_key, generate_key, load_private_key

    within = _duration(expires_in, "expires-in")
    period = _duration(rekey_period, "rekey-period")
    if within and period:
        raise StepError("flag '--expires-in' is incompatible with '--rekey-period'")
    if period and not daemon:
        raise StepError("flag '--rekey-period' requires the '--daemon' flag")
    if pid and pid_file:
        raise StepError("flag '--pid' and flag '--pid-file' are mutually exclusive")
    if curve and not kty:
        raise StepError("flag '--curve' requires the '--kty' flag")
    if size and not kty:
        raise StepError("flag '--size' requires the '--kty' flag")
    if kty == "RSA" and (size or 2048) < 2048:
        raise StepError("flag '--size' requires at least 2048 unless '--insecure' flag is "
                        "provided")
    url = normalize_ca_url(require(ctx, ca_url, "ca-url"))
    root_path = root_file(ctx, root)
    retry = _duration(retry_interval, "retry-interval") or timedelta(minutes=1)
    password = ui.read_password_file(password_file, "password-file")
    credentials = Credentials(Path(crt_file), Path(key_file), password)
    target_crt, target_key = Path(out_cert or crt_file), Path(out_key or key_file)
    write_key = out_key is not None or private_key is None
    hooks = Hooks(pid, pid_file, signum, exec_command)
    leaf = credentials.chain()[0]
    credentials.key()  # a wrong password fails here, before the CA is asked
    if leaf.not_valid_after_utc <= utcnow():
        raise StepError("cannot rekey an expired certificate")
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    if period is not None and period >= lifetime:
        raise StepError("flag '--rekey-period' must be within (lower than) the certificate "
                        "validity period")

    def new_key() -> Any:
        if private_key:
            try:
                return load_private_key(Path(private_key).read_bytes(), password)
            except (OSError, ValueError) as exc:
                raise StepError(f"error reading --private-key {private_key}: {exc}") from None
        try:
            return generate_key(kty or "EC",
                                curve=curve or ("Ed25519" if kty == "OKP" else "P-256"),
                                size=size or 2048)
        except ValueError as exc:
            raise StepError(str(exc)) from None

    def rekey_once() -> None:
        key = new_key()
        body = json.dumps({"csr": _bare_csr(key)}).encode()
        try:
            answer = post(url, "/rekey", root=root_path, body=body, client=credentials)
        except StepError as exc:
            raise StepError(f"error rekeying certificate: {exc}") from None
        chain = answer.get("certChain") or [answer.get("crt"), answer.get("ca")]
        write_private(target_crt, "".join(c for c in chain if c).encode())
        if write_key:
            write_private(target_key, encrypt_private_key(key, None))
        # the next rekey (daemon) authenticates with what was just written
        credentials.crt_file = target_crt
        if write_key:
            credentials.key_file, credentials.password = target_key, None

    if daemon:
        _daemon(rekey_once, credentials, hooks, within=within, period=period, retry=retry,
                done="rekeyed")
        return
    if within is not None:
        remaining = leaf.not_valid_after_utc - utcnow()
        if remaining > within + within / 20 * random.random():
            ui.info(f"certificate not rekeyed: expires in {format_duration(remaining)}")
            return
    ui.check_overwrite(target_crt, force)
    if write_key:
        ui.check_overwrite(target_key, force)
    rekey_once()
    ui.status("Certificate", str(target_crt))
    if write_key:
        ui.status("Private Key", str(target_key))
    hooks.run()


def _bare_csr(key: Any) -> str:
    """step's rekey request: a CSR that only proves possession of the new key; the CA copies
    the subject and names from the certificate being rekeyed."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from stepca.x509util import signature_hash

    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        key, signature_hash(key))
    return csr.public_bytes(serialization.Encoding.PEM).decode()



REASON_NAMES = {"unspecified": 0, "keycompromise": 1, "cacompromise": 2,
                "affiliationchanged": 3, "superseded": 4, "cessationofoperation": 5,
                "certificatehold": 6, "removefromcrl": 8, "privilegewithdrawn": 9,
                "aacompromise": 10}


@click.command(cls=StepCommand)
@click.argument("serial", metavar="[SERIAL-NUMBER]", required=False)
@click.option("--token", metavar="TOKEN", help="A revocation token for SERIAL-NUMBER.")
@click.option("--cert", "cert_file", metavar="FILE",
              help="Revoke this certificate, authenticating with it over mutual TLS.")
@click.option("--key", "key_file", metavar="FILE", help="The private key of --cert.")
@click.option("--reason", default="", help="Why the certificate is revoked (free text).")
@click.option("--reasonCode", "--reason-code", "reason_code", default="0",
              help="An RFC 5280 reason code, by number or name (e.g. 1 or keyCompromise).")
@ca_url_option
@root_option
@token_options
@click.pass_context
def revoke(ctx: click.Context, serial: str | None, token: str | None, cert_file: str | None,
           key_file: str | None, reason: str, reason_code: str, ca_url: str | None,
           root: str | None, **opts: Any) -> None:
    """revoke a certificate"""
    code = _reason_code(reason_code)
    url = normalize_ca_url(require(ctx, ca_url, "ca-url"))
    root_path = root_file(ctx, root)
    body: dict[str, Any] = {"reasonCode": code, "reason": reason, "passive": True}
    if cert_file or key_file:
        if not (cert_file and key_file):
            raise StepError("flag '--cert' requires the '--key' flag")
        if token:
            raise StepError("flag '--token' is incompatible with '--cert'")
        credentials = Credentials(Path(cert_file), Path(key_file),
                                  ui.read_password_file(opts.get("password_file"),
                                                        "password-file"))
        number = str(credentials.chain()[0].serial_number)
        if serial and serial != number:
            raise StepError(f"serial number {serial} does not match --cert's {number}")
        body["serial"] = number
        ui.status("CA", url)
        post(url, "/revoke", root=root_path, body=json.dumps(body).encode(), client=credentials)
    else:
        if not serial:
            raise StepError(f"not enough positional arguments were provided in "
                            f"'{ctx.command_path} <serial-number>'")
        body["serial"] = serial
        if not token:
            offline = opts["offline"]
            token = sign_token(
                None if offline else CAClient(url, root=root_path), ca_url=url, subject=serial,
                sans=[], provisioner=opts["provisioner"], kid=opts["kid"], key_file=None,
                password=_token_password(opts["provisioner_password_file"],
                                         opts["password_file"]),
                root_fingerprint=_root_fingerprint(root_path), not_before=None, not_after=None,
                command=ctx.command_path, plugins=plugins_for(ctx),
                given_flags=given_client_flags(opts), console=bool(opts.get("console")),
                offline_provisioners=_offline_provisioners(ctx, opts["ca_config"])
                if offline else None, audience_path="/1.0/revoke").token
        body["ott"] = token
        ui.status("CA", url)
        post(url, "/revoke", root=root_path, body=json.dumps(body).encode())
    ui.info(f"Certificate with Serial Number {body['serial']} has been revoked.")


def _reason_code(value: str) -> int:
    if value.isdigit():
        return int(value)
    code = REASON_NAMES.get(value.replace("-", "").replace("_", "").lower())
    if code is None:
        raise StepError(f"invalid value '{value}' for flag '--reasonCode'")
    return code



class NeedsRenewalExit(StepError):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = code


@click.command(name="needs-renewal")
@click.argument("source", metavar="CRT-FILE|URL")
@click.option("--expires-in", default="66%", metavar="PERCENT|DURATION",
              help="Renew when this share of the lifetime has passed (66%) or when the "
                   "certificate expires within this duration.")
@click.option("--bundle", is_flag=True, help="Check every certificate of a bundle.")
@click.option("--roots", metavar="FILE", help="Roots to verify a server with (URLs).")
@click.option("--servername", metavar="NAME", help="The TLS server name (URLs).")
@click.option("-v", "--verbose", is_flag=True, help="Say what was decided.")
def needs_renewal(source: str, expires_in: str, bundle: bool, roots: str | None,
                  servername: str | None, verbose: bool) -> None:
    """check if a certificate needs to be renewed (exit 0: yes, 1: no, 2: no file, 255: error)"""
    from stepca_cli.commands.inspect import read_items

    if "://" not in source and not Path(source).exists():
        raise NeedsRenewalExit(f"open {source}: no such file or directory", 2)
    try:
        items = read_items(source, roots=roots, servername=servername)
        threshold = expires_in.strip()
        if threshold.endswith("%"):
            percent = float(threshold[:-1])
            if not 0 <= percent <= 100:
                raise StepError("--expires-in percentage must be between 0 and 100")
            window = None
        else:
            percent, window = None, _duration(threshold, "expires-in")
    except StepError as exc:
        raise NeedsRenewalExit(str(exc), 255) from None
    now = utcnow()
    needed = False
    for cert in items if bundle else items[:1]:
        remaining = cert.not_valid_after_utc - now
        total = cert.not_valid_after_utc - cert.not_valid_before_utc
        if percent is not None:
            used = int((1 - remaining / total) * 100) if total.total_seconds() > 0 else 100
            needed = needed or used >= percent
        else:
            needed = needed or window >= remaining
    if needed:
        if verbose:
            click.echo("certificate needs renewal")
        return
    raise NeedsRenewalExit("certificate does not need renewal" if verbose else "", 1)
