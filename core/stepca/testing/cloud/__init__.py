"""Cloud metadata services for tests, each a real HTTP server on 127.0.0.1 that speaks its
cloud's protocol as the SDKs use it and signs with a test key a CA can be told to trust:
:class:`AwsImdsEmulator`, :class:`GcpMetadataEmulator`, :class:`AzureImdsEmulator`. The cloud
plugins' clients fetch identities from them with the clouds' own SDKs."""

from ._server import MetadataEmulator, Request, SigningKey
from .aws import AwsImdsEmulator, AwsInstance
from .azure import AzureImdsEmulator, AzureInstance
from .gcp import GcpInstance, GcpMetadataEmulator

__all__ = ["AwsImdsEmulator", "AwsInstance", "AzureImdsEmulator", "AzureInstance",
           "GcpInstance", "GcpMetadataEmulator", "MetadataEmulator", "Request", "SigningKey"]
