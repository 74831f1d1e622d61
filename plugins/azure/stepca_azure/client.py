"""The client side of Azure provisioners, as ``step ca certificate --issuer <azure>`` has it on
an Azure virtual machine: the VM's cloud (``azEnvironment`` from the instance metadata service,
asked through azure-core's pipeline) gives the resource, and azure-identity's
``ManagedIdentityCredential`` the managed identity's access token for it, which is the token
sent to the CA. As smallstep's step, the resource is the cloud's management endpoint whatever
the provisioner's ``audience``.

``AZURE_POD_IDENTITY_AUTHORITY_HOST`` (azure-identity's own setting) points both requests at
another metadata service. Imported by the CLI only when an Azure provisioner is used
(``stepca_azure._client``)."""

from __future__ import annotations

import logging
import os

from stepca.jose import parse_unverified
from stepca.provisioner_client import ProvisionerClient, TokenRequest

__all__ = ["ENVIRONMENTS", "AzureClient", "resource_of"]

IMDS_AUTHORITY = "http://169.254.169.254"  # azure-identity's default too
ENVIRONMENT_PATH = "/metadata/instance/compute/azEnvironment"
PUBLIC_CLOUD = "https://management.azure.com/"
# smallstep's table: the cloud a VM is in, and the resource its token is asked for
ENVIRONMENTS = {
    "AzurePublicCloud": PUBLIC_CLOUD,
    "AzureCloud": PUBLIC_CLOUD,
    "AzureUSGovernmentCloud": "https://management.usgovcloudapi.net/",
    "AzureUSGovernment": "https://management.usgovcloudapi.net/",
    "AzureChinaCloud": "https://management.chinacloudapi.cn/",
    "AzureGermanCloud": "https://management.microsoftazure.de/",
}
MAX_REASON = 300  # an SDK's message can carry a whole response body

# azure-identity logs each failed attempt as a warning; with a handler of its own the logger
# does not fall back to printing them on stderr: the one line the client raises says it all
logging.getLogger("azure").addHandler(logging.NullHandler())


def resource_of(environment: str) -> str:
    """The resource for a VM's ``azEnvironment``; the public cloud's for one step does not know,
    as step does."""
    return ENVIRONMENTS.get(environment.strip(), PUBLIC_CLOUD)


class AzureClient(ProvisionerClient):
    type = "Azure"

    def token(self, request: TokenRequest) -> str:
        if request.sans is None:
            raise ValueError("an Azure provisioner authorizes only /sign, not revocation tokens")
        from azure.core.exceptions import AzureError
        from azure.identity import ManagedIdentityCredential

        authority = _authority()
        resource = resource_of(_environment(authority))
        try:
            with ManagedIdentityCredential() as credential:
                # a resource is asked for as its ".default" scope; the SDK strips it again
                token = credential.get_token(resource + "/.default").token
        except AzureError as exc:
            raise ValueError(f"cannot get the managed identity token from the Azure instance "
                             f"metadata service at {authority} (is this an Azure VM with a "
                             f"managed identity?): {_one_line(exc)}") from None
        if not isinstance(token, str) or token.count(".") != 2:
            raise ValueError("the Azure instance metadata service did not answer with a token")
        return token

    def csr_sans(self, token: str, request: TokenRequest) -> list[str] | None:
        # step's: the VM's name, and the subject unless the provisioner allows only that
        # (disableCustomSANs)
        from stepca.errors import Unauthorized
        from stepca_azure.provisioner import ManagedIdentity

        try:
            name = ManagedIdentity.of(parse_unverified(token).claims).name
        except Unauthorized:
            return None
        names = [name]
        if not request.provisioner.get("disableCustomSANs"):
            names.append(request.subject)
        return list(dict.fromkeys(names))


def _authority() -> str:
    return (os.environ.get("AZURE_POD_IDENTITY_AUTHORITY_HOST") or IMDS_AUTHORITY).rstrip("/")


def _environment(authority: str) -> str:
    """The VM's ``azEnvironment``, from the instance metadata service."""
    from azure.core.exceptions import AzureError
    from azure.core.pipeline import Pipeline
    from azure.core.pipeline.policies import RetryPolicy
    from azure.core.pipeline.transport import RequestsTransport
    from azure.core.rest import HttpRequest

    request = HttpRequest("GET", authority + ENVIRONMENT_PATH,
                          params={"format": "text", "api-version": "2021-02-01"},
                          headers={"Metadata": "true"})
    failed = (f"cannot get the Azure environment from the instance metadata service at "
              f"{authority} (is this an Azure VM?)")
    try:
        with Pipeline(transport=RequestsTransport(),
                      policies=[RetryPolicy(retry_total=2, retry_backoff_factor=0.5)]) as pipeline:
            response = pipeline.run(request, connection_timeout=2, read_timeout=10).http_response
            if response.status_code != 200:
                raise ValueError(f"{failed}: HTTP {response.status_code}")
            return str(response.text())[:100]
    except AzureError as exc:
        raise ValueError(f"{failed}: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    # azure-core's errors carry (message, response): the message is what a person reads
    text = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    text = " ".join(text.split()) or type(exc).__name__
    return text if len(text) <= MAX_REASON else text[:MAX_REASON] + "…"
