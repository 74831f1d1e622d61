"""``step oauth``: an OAuth access token or an OpenID Connect ID token from a provider, through
the browser (the flow is ``stepca_cli.oauth``)."""

from __future__ import annotations

from collections.abc import Callable

import click

from stepca_cli.context import StepCommand
from stepca_cli.errors import StepError

# step's flags for flows this tool does not implement: refused with one line, not ignored
_UNSUPPORTED = {
    "console-flow": "the device and out-of-band flows are not implemented; --console prints "
                    "the URL and reads the code",
    "account": "service accounts and installed-application files are not implemented",
    "jwt": "service account JWTs are not implemented",
    "authorization-endpoint": "give the provider's discovery document with --provider",
    "device-authorization-endpoint": "the device flow is not implemented",
    "token-endpoint": "give the provider's discovery document with --provider",
    "implicit": "the implicit flow is not implemented (it exposes the tokens in the URL)",
    "browser": "the browser is the system's (set BROWSER to choose another)",
    "redirect-url": "the browser is answered with a page of its own",
}


def _unsupported(name: str, *, flag: bool = False) -> click.Option:
    return click.Option([f"--{name}"], is_flag=flag, hidden=True, expose_value=False,
                        callback=_refuse(name))


def _refuse(name: str) -> Callable[[click.Context, click.Parameter, object], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: object) -> None:
        if value not in (None, False) and not ctx.resilient_parsing:
            raise StepError(f"flag '--{name}' is not supported: {_UNSUPPORTED[name]}")
    return callback


@click.command(cls=StepCommand)
@click.option("--provider", "--idp", default="google", show_default=True, metavar="PROVIDER",
              help="OAuth provider for authentication: google, github, or the URL of an OpenID "
                   "provider (its issuer or its discovery document).")
@click.option("-e", "--email", metavar="EMAIL",
              help="Email to authenticate (sent to the provider as login_hint).")
@click.option("-c", "--console", is_flag=True,
              help="Complete the flow while remaining only inside the terminal: print the "
                   "URL, then read the code or the URL the browser was sent to.")
@click.option("--client-id", metavar="CLIENT-ID", help="OAuth Client ID")
@click.option("--client-secret", metavar="CLIENT-SECRET", help="OAuth Client Secret")
@click.option("--header", is_flag=True,
              help="Output HTTP Authorization Header (suitable for use with curl)")
@click.option("--oidc", is_flag=True,
              help="Output OIDC Token instead of OAuth Access Token")
@click.option("--bare", is_flag=True, help="Only output the token")
@click.option("--scope", multiple=True, metavar="SCOPE",
              help="OAuth scopes (repeatable; default: openid email)")
@click.option("--auth-param", multiple=True, metavar="KEY=VALUE",
              help="OAuth additional authentication parameters to include as part of the URL "
                   "query (repeatable).")
@click.option("--prompt", metavar="PROMPT",
              help="Whether the Authorization Server prompts the End-User for reauthentication "
                   "and consent: none, login, consent or select_account.")
@click.option("--listen", metavar="ADDRESS",
              help="Callback listener address (e.g. \":10000\"; an empty host is 127.0.0.1).")
@click.option("--listen-url", metavar="URL",
              help="The redirect_uri in the authorize request (e.g. "
                   "\"http://127.0.0.1:10000\").")
@click.option("--timeout", metavar="DURATION", default="2m", show_default=True,
              help="How long to wait for the browser or the code (a duration, e.g. 30s).")
def oauth(provider: str, email: str | None, console: bool, client_id: str | None,
          client_secret: str | None, header: bool, oidc: bool, bare: bool,
          scope: tuple[str, ...], auth_param: tuple[str, ...], prompt: str | None,
          listen: str | None, listen_url: str | None, timeout: str) -> None:
    """authorization and single sign-on using OAuth & OIDC"""
    from stepca.timeutil import parse_duration

    from stepca_cli.oauth import DEFAULT_SCOPES, authorize

    if not client_id:
        if provider != "google":
            raise StepError("flag '--client-id' required with '--provider'")
        raise StepError("flag '--client-id' is required: this step has no OAuth application of "
                        "its own at Google")
    try:
        wait = parse_duration(timeout).total_seconds()
    except ValueError as exc:
        raise StepError(f"invalid value '{timeout}' for flag '--timeout': {exc}") from None
    if wait <= 0:
        raise StepError(f"invalid value '{timeout}' for flag '--timeout': it must be positive")
    tokens = authorize(provider=provider, client_id=client_id, client_secret=client_secret,
                       scopes=scope or DEFAULT_SCOPES, listen=listen, listen_url=listen_url,
                       console=console, prompt=prompt, auth_params=auth_param,
                       login_hint=email, timeout=wait)
    token = tokens.id_token if oidc else tokens.access_token
    if header:
        click.echo(f"Authorization: Bearer {token}")
    elif bare:
        click.echo(token)
    else:
        click.echo(tokens.to_json())


for _name in _UNSUPPORTED:
    oauth.params.append(_unsupported(_name, flag=_name in ("jwt", "implicit")))
