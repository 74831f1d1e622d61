"""The client side of GCP provisioners, as ``step ca certificate --issuer <gcp>`` has it on a
Compute Engine instance: the metadata server's identity token (``format=full``) for the
audience ``<ca-url>/1.0/sign#gcp/<name>``, obtained with google-auth's compute-engine ID token
credentials. ``GCE_METADATA_HOST`` points google-auth at another metadata server (read when
google-auth is first imported).

Imported by the CLI only when a GCP provisioner is used (``stepca_gcp._client``)."""

from __future__ import annotations

from urllib.parse import quote

from stepca.provisioner_client import ProvisionerClient, TokenRequest

__all__ = ["GCPClient", "sign_audience"]


def sign_audience(audience: str, name: str) -> str:
    """step-ca's audience for a GCP identity: the sign URL with the provisioner in its
    fragment, which is how the CA finds the provisioner; escaped as Go's ``url.URL`` escapes a
    fragment (``Google Cloud`` becomes ``Google%20Cloud``), as smallstep's step sends it."""
    return f"{audience}#{quote(f'gcp/{name}', safe='$&+,/:;=?@!()*')}"


class GCPClient(ProvisionerClient):
    type = "GCP"

    def token(self, request: TokenRequest) -> str:
        if request.sans is None:
            raise ValueError("a GCP provisioner authorizes only /sign, not revocation tokens")
        import google.auth.exceptions
        import google.auth.transport.requests
        from google.auth import compute_engine

        name = str(request.provisioner.get("name", ""))
        audience = sign_audience(request.audience, name)
        transport = google.auth.transport.requests.Request()
        try:
            credentials = compute_engine.IDTokenCredentials(
                transport, audience, use_metadata_identity_endpoint=True)
            credentials.refresh(transport)  # asks instance/service-accounts/default/identity
        except (google.auth.exceptions.GoogleAuthError, ValueError) as exc:
            raise ValueError(f"cannot get the instance identity token from the GCP metadata "
                             f"server (is this a Compute Engine instance?): "
                             f"{_one_line(exc)}") from None
        token = credentials.token
        if not isinstance(token, str) or token.count(".") != 2:
            raise ValueError("the GCP metadata server did not answer with an identity token")
        return token


def _one_line(exc: BaseException) -> str:
    # google-auth's errors carry (message, response): the message is what a person reads
    text = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    return " ".join(text.split())[:300] or type(exc).__name__
