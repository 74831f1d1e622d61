"""The client side of OIDC provisioners, as ``step ca token``/``step ca certificate`` have it: the
person signs in with their OpenID provider in the browser (``step oauth``'s flow, with the
provisioner's ``configurationEndpoint``, ``clientID``, ``clientSecret``, ``scopes``,
``listenAddress`` and ``authParams`` from ``/provisioners``), and the ID token the provider
issues is the one-time token.

Imported by the CLI only when an OIDC provisioner is used (``stepca_oidc._client``)."""

from __future__ import annotations

from typing import Any

from stepca.provisioner_client import ProvisionerClient, TokenRequest

__all__ = ["OIDCClient"]


def _strings(entry: Any, key: str) -> tuple[str, ...]:
    value = entry.get(key)
    return tuple(v for v in value if isinstance(v, str) and v) if isinstance(value, list) else ()


class OIDCClient(ProvisionerClient):
    type = "OIDC"
    flags = frozenset({"console"})

    def token(self, request: TokenRequest) -> str:
        from stepca_cli.oauth import DEFAULT_SCOPES, authorize

        entry = request.provisioner
        endpoint, client_id = entry.get("configurationEndpoint"), entry.get("clientID")
        if not isinstance(endpoint, str) or not endpoint or not isinstance(client_id, str):
            raise ValueError("the CA lists no configurationEndpoint and clientID for it")
        secret = entry.get("clientSecret")
        listen = entry.get("listenAddress")
        tokens = authorize(provider=endpoint, client_id=client_id,
                           client_secret=secret if isinstance(secret, str) and secret else None,
                           scopes=_strings(entry, "scopes") or DEFAULT_SCOPES,
                           listen=listen if isinstance(listen, str) and listen else None,
                           auth_params=_strings(entry, "authParams"), console=request.console)
        if not tokens.id_token:
            raise ValueError("the OpenID provider answered without an ID token")
        return tokens.id_token
