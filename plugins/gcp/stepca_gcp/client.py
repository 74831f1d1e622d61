"""The client side of GCP provisioners, as ``step ca certificate --issuer <gcp>`` has it on a
Compute Engine instance: the metadata server's identity token (``format=full``) for the
audience ``<ca-url>/1.0/sign#gcp/<name>``, obtained with google-auth's compute-engine ID token
credentials. ``GCE_METADATA_HOST`` points google-auth at another metadata server (read when
google-auth is first imported).

Imported by the CLI only when a GCP provisioner is used (``stepca_gcp._client``)."""

from __future__ import annotations

from stepca.jose import parse_unverified
from stepca.provisioner_client import ProvisionerClient, TokenRequest, sign_audience

__all__ = ["GCPClient"]


class GCPClient(ProvisionerClient):
    type = "GCP"

    def token(self, request: TokenRequest) -> str:
        if request.sans is None:
            raise ValueError("a GCP provisioner authorizes only /sign, not revocation tokens")
        import google.auth.exceptions
        import google.auth.transport.requests
        from google.auth import compute_engine

        name = str(request.provisioner.get("name", ""))
        audience = sign_audience(request.audience, f"gcp/{name}")
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

    def csr_sans(self, token: str, request: TokenRequest) -> list[str] | None:
        # step's: the instance's internal DNS names, and the subject unless the provisioner
        # allows only those (disableCustomSANs)
        engine = (parse_unverified(token).claims.get("google") or {}).get("compute_engine")
        if not isinstance(engine, dict):
            return None
        name, zone, project = (engine.get(k) for k in ("instance_name", "zone", "project_id"))
        if not all(isinstance(v, str) and v for v in (name, zone, project)):
            return None
        names = [f"{name}.c.{project}.internal", f"{name}.{zone}.c.{project}.internal"]
        if not request.provisioner.get("disableCustomSANs"):
            names.append(request.subject)
        return list(dict.fromkeys(names))


def _one_line(exc: BaseException) -> str:
    # google-auth's errors carry (message, response): the message is what a person reads
    text = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    return " ".join(text.split())[:300] or type(exc).__name__
