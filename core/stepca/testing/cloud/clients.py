"""An instance's side: its cloud identity fetched with the cloud's own SDK, pointed at the
metadata service only by that SDK's documented setting. Each SDK is imported when its function
is called, so a process pays only for the cloud it runs on.

- AWS, botocore: ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` (``AWS_EC2_METADATA_V1_DISABLED`` to refuse
  the IMDSv1 fallback); an IMDSv2 session token first, plain IMDSv1 GETs if the PUT is refused.
- Azure, azure-identity: ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` (the IMDS authority; App Service's
  ``IDENTITY_ENDPOINT`` speaks another protocol).

Here until the cloud plugins exist: each will take its function, and declare its SDK (GCP's
is the GCP plugin's client, ``stepca_gcp.client``).
Every failure is one :class:`MetadataUnavailable` line naming where the SDK looked.
"""

from __future__ import annotations

import base64
import logging
import os
import sys

AWS_DEFAULT_ENDPOINT = "http://169.254.169.254/"
AZURE_DEFAULT_AUTHORITY = "http://169.254.169.254"
DOCUMENT_PATH = "latest/dynamic/instance-identity/document"
SIGNATURE_PATH = "latest/dynamic/instance-identity/signature"
MAX_REASON = 300  # SDK messages can carry a whole response body


class MetadataUnavailable(Exception):
    """The instance's identity could not be obtained; the message is one line."""


def _one_line(error: BaseException) -> str:
    # an SDK's error may carry (message, response): the message is the reason
    first = error.args[0] if error.args and isinstance(error.args[0], str) else str(error)
    reason = " ".join(first.split()) or type(error).__name__
    return reason if len(reason) <= MAX_REASON else reason[:MAX_REASON] + "…"


def aws_identity() -> tuple[bytes, bytes]:
    """The instance identity document and its raw RSA-SHA256 signature, from IMDS."""
    from botocore.exceptions import BotoCoreError
    from botocore.session import get_session
    from botocore.utils import IMDSFetcher

    session = get_session()
    config = {name: session.get_config_variable(name)
              for name in ("ec2_metadata_service_endpoint", "ec2_metadata_service_endpoint_mode",
                           "ec2_metadata_v1_disabled")}
    endpoint = config["ec2_metadata_service_endpoint"] or AWS_DEFAULT_ENDPOINT
    try:
        fetcher = IMDSFetcher(timeout=2, num_attempts=2, config=config)
        # botocore's public fetchers each read one thing (role credentials, the region); the
        # document is read through the same fetcher, with its v2 session and v1 fallback
        token = fetcher._fetch_metadata_token()
        document = fetcher._get_request(DOCUMENT_PATH, None, token).content
        signature = base64.b64decode(fetcher._get_request(SIGNATURE_PATH, None, token).text)
    except BotoCoreError as error:
        raise MetadataUnavailable(
            f"no AWS instance metadata at {endpoint}: {_one_line(error)}") from error
    except IMDSFetcher._RETRIES_EXCEEDED_ERROR_CLS as error:  # every attempt failed or refused
        raise MetadataUnavailable(f"no AWS instance metadata at {endpoint}: the metadata service "
                                  "did not answer or refused every request") from error
    return document, signature


def azure_identity_token(resource: str) -> str:
    """The managed identity's access token for ``resource``, from IMDS."""
    from azure.core.exceptions import AzureError
    from azure.identity import ManagedIdentityCredential

    authority = os.environ.get("AZURE_POD_IDENTITY_AUTHORITY_HOST") or AZURE_DEFAULT_AUTHORITY
    try:
        with ManagedIdentityCredential() as credential:
            # a resource is asked for as its ".default" scope; the SDK strips the suffix again
            return credential.get_token(resource + "/.default").token
    except AzureError as error:
        raise MetadataUnavailable(
            f"no Azure managed identity token at {authority}: {_one_line(error)}") from error


def main(argv: list[str]) -> int:
    """``python -m stepca.testing.cloud.clients aws|azure <resource>``: what a
    fresh process (as ``step`` will be) obtains, on stdout; a failure is one line on stderr."""
    # the SDKs log their retries; with a handler on the root logger, Python's last-resort
    # handler stays quiet and the one line below says it all
    logging.getLogger().addHandler(logging.NullHandler())
    try:
        match argv:
            case ["aws"]:
                document, signature = aws_identity()
                print(base64.b64encode(document).decode(), base64.b64encode(signature).decode())
            case ["azure", resource]:
                print(azure_identity_token(resource))
            case _:
                print("usage: clients aws | azure <resource>", file=sys.stderr)
                return 2
    except MetadataUnavailable as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
