"""The client side of AWS provisioners, as ``step ca certificate --issuer <aws>`` has it on an
EC2 instance: the instance identity document and its signature, read from the instance metadata
service (IMDS) with botocore's IMDS fetcher, wrapped in step's HS256 token.

botocore's own settings choose the metadata service: ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` (or
``ec2_metadata_service_endpoint`` in the AWS config file) points it elsewhere, and
``AWS_EC2_METADATA_V1_DISABLED`` refuses the IMDSv1 fallback. The provisioner's
``imdsVersions`` (as ``/provisioners`` lists it) narrows that further.

Imported by the CLI only when an AWS provisioner is used (``stepca_aws._client``)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any

from stepca.jose import parse_unverified, sign_compact
from stepca.provisioner_client import ProvisionerClient, TokenRequest, sign_audience

__all__ = ["AWSClient", "imds_versions"]

ISSUER = "ec2.amazonaws.com"
DOCUMENT_PATH = "latest/dynamic/instance-identity/document"
SIGNATURE_PATH = "latest/dynamic/instance-identity/signature"
DEFAULT_ENDPOINT = "http://169.254.169.254/"  # botocore's default, named in messages
TOKEN_LIFETIME = 300  # step's five minutes
IMDS_TIMEOUT = 2  # seconds per request; IMDS answers in milliseconds when it is there
IMDS_ATTEMPTS = 2
MAX_DOCUMENT = 4096
MAX_SIGNATURE_TEXT = 2048
MAX_REASON = 300


def imds_versions(provisioner: Mapping[str, Any]) -> tuple[str, ...]:
    """The IMDS versions the provisioner lets its clients use (step-ca's default: both)."""
    listed = provisioner.get("imdsVersions") or ["v2", "v1"]
    if not isinstance(listed, list) or not listed or not set(listed) <= {"v1", "v2"}:
        raise ValueError("the provisioner's imdsVersions must list \"v1\" and/or \"v2\"")
    return tuple(listed)


def _one_line(error: BaseException) -> str:
    # botocore's messages may carry a response body: the first words are the reason
    first = error.args[0] if error.args and isinstance(error.args[0], str) else str(error)
    reason = " ".join(first.split()) or type(error).__name__
    return reason if len(reason) <= MAX_REASON else reason[:MAX_REASON] + "…"


def _identity_fetcher() -> type[Any]:
    from botocore.utils import IMDSFetcher

    class IdentityDocumentFetcher(IMDSFetcher):  # type: ignore[misc]
        """Reads the identity document as botocore's own fetchers read credentials and the
        region: an IMDSv2 session token first, plain IMDSv1 GETs if the PUT is refused (and
        v1 is not disabled)."""

        def identity(self, *, v2: bool) -> tuple[bytes, str]:
            token = self._fetch_metadata_token() if v2 else None
            document = self._get_request(DOCUMENT_PATH, None, token).content
            signature = self._get_request(SIGNATURE_PATH, None, token).text
            return document, signature

    return IdentityDocumentFetcher


def fetch_identity(versions: tuple[str, ...]) -> tuple[bytes, bytes]:
    """The instance identity document and its raw RSA-SHA256 signature, from IMDS."""
    from botocore.exceptions import BotoCoreError
    from botocore.session import get_session

    session = get_session()  # reads AWS_* settings and the AWS config file, as the CLI does
    config = {name: session.get_config_variable(name)
              for name in ("ec2_metadata_service_endpoint", "ec2_metadata_service_endpoint_mode",
                           "ec2_metadata_v1_disabled")}
    # a setting that disables v1 stays in force; the provisioner can only narrow further
    config["ec2_metadata_v1_disabled"] = bool(config["ec2_metadata_v1_disabled"]
                                              or "v1" not in versions)
    endpoint = config["ec2_metadata_service_endpoint"] or DEFAULT_ENDPOINT
    where = f"from the AWS instance metadata service at {endpoint}"
    fetcher_class = _identity_fetcher()
    try:
        fetcher = fetcher_class(timeout=IMDS_TIMEOUT, num_attempts=IMDS_ATTEMPTS, config=config)
        document, text = fetcher.identity(v2="v2" in versions)
    except BotoCoreError as error:
        raise ValueError(f"cannot get the instance identity document {where} (is this an "
                         f"EC2 instance?): {_one_line(error)}") from None
    except fetcher_class._RETRIES_EXCEEDED_ERROR_CLS:  # every attempt failed or was refused
        raise ValueError(f"cannot get the instance identity document {where} (is this an "
                         f"EC2 instance?): it did not answer or refused every request") from None
    if not 0 < len(document) <= MAX_DOCUMENT or not 0 < len(text) <= MAX_SIGNATURE_TEXT:
        raise ValueError(f"the instance identity document {where} is empty or too large")
    try:
        # line breaks are allowed, as Go's decoder (step's) allows them
        signature = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the instance identity signature {where} is not base64") from None
    return document, signature


class AWSClient(ProvisionerClient):
    type = "AWS"

    def token(self, request: TokenRequest) -> str:
        if request.sans is None:
            raise ValueError("an AWS provisioner authorizes only /sign, not revocation tokens")
        name = str(request.provisioner.get("name", ""))
        document, signature = fetch_identity(imds_versions(request.provisioner))
        try:
            instance_id = json.loads(document)["instanceId"]
        except (ValueError, TypeError, KeyError):
            raise ValueError("the instance identity document has no instanceId") from None
        now = int(time.time())
        # step's token: the SANs are not in it; the CSR asks for them
        claims = {
            "iss": ISSUER, "sub": request.subject,
            "aud": [sign_audience(request.audience, f"aws/{name}")],
            "iat": now, "nbf": now, "exp": now + TOKEN_LIFETIME,
            # the id step gives it: the instance's, as the CA spends it (trust on first use)
            "jti": hashlib.sha256(f"aws/{name}.{instance_id}".encode()).hexdigest(),
            "amazon": {"document": base64.b64encode(document).decode(),
                       "signature": base64.b64encode(signature).decode()},
        }
        payload = json.dumps(claims, separators=(",", ":")).encode()
        return sign_compact(payload, signature, "HS256", {"typ": "JWT"})

    def csr_sans(self, token: str, request: TokenRequest) -> list[str] | None:
        # step's: the instance's private IP and DNS name, and the subject unless the
        # provisioner allows only those (disableCustomSANs)
        amazon = parse_unverified(token).claims.get("amazon") or {}
        try:
            document = json.loads(base64.b64decode(amazon["document"]))
            ip, region = document["privateIp"], document["region"]
        except (ValueError, TypeError, KeyError):
            return None
        if not (isinstance(ip, str) and ip and isinstance(region, str) and region):
            return None
        names = [ip, f"ip-{ip.replace('.', '-')}.{region}.compute.internal"]
        if not request.provisioner.get("disableCustomSANs"):
            names.append(request.subject)
        return list(dict.fromkeys(names))
