"""An instance's side: its cloud identity fetched with the cloud's own SDK, pointed at the
metadata service only by that SDK's documented setting. Each SDK is imported when its function
is called, so a process pays only for the cloud it runs on.

- Azure, azure-identity: ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` (the IMDS authority; App Service's
  ``IDENTITY_ENDPOINT`` speaks another protocol).

Here until the Azure plugin exists (GCP's and AWS's clients are their plugins').
Every failure is one :class:`MetadataUnavailable` line naming where the SDK looked.
"""

from __future__ import annotations

import logging
import os
import sys

AZURE_DEFAULT_AUTHORITY = "http://169.254.169.254"
MAX_REASON = 300  # SDK messages can carry a whole response body


class MetadataUnavailable(Exception):
    """The instance's identity could not be obtained; the message is one line."""


def _one_line(error: BaseException) -> str:
    # an SDK's error may carry (message, response): the message is the reason
    first = error.args[0] if error.args and isinstance(error.args[0], str) else str(error)
    reason = " ".join(first.split()) or type(error).__name__
    return reason if len(reason) <= MAX_REASON else reason[:MAX_REASON] + "…"


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
    """``python -m stepca.testing.cloud.clients azure <resource>``: what a
    fresh process (as ``step`` will be) obtains, on stdout; a failure is one line on stderr."""
    # the SDKs log their retries; with a handler on the root logger, Python's last-resort
    # handler stays quiet and the one line below says it all
    logging.getLogger().addHandler(logging.NullHandler())
    try:
        match argv:
            case ["azure", resource]:
                print(azure_identity_token(resource))
            case _:
                print("usage: clients azure <resource>", file=sys.stderr)
                return 2
    except MetadataUnavailable as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
