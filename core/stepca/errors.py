"""Typed errors of the certificate authority.

Each error carries the HTTP status step-ca uses for it and a message safe to show a client:
it never contains a secret (a token, a password, a key). The Falcon app renders every
``StepCAError`` once, as ``{"status": N, "message": "..."}``.
"""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "Forbidden",
    "InternalError",
    "NotFound",
    "NotImplementedYet",
    "PayloadTooLarge",
    "StepCAError",
    "TokenAlreadyUsed",
    "Unauthorized",
    "shown",
]


def shown(value: object, limit: int = 64) -> str:
    """A client's value as a message may show it: quoted, with control and other invisible
    characters escaped (so it cannot forge a log line), cut to ``limit`` characters."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        return repr(text[:limit]) + "..."
    return repr(text)


class StepCAError(Exception):
    """Base of every error the authority reports to a client."""

    status: int = 500
    prefix: str = "The certificate authority encountered an Internal Server Error"

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason

    @property
    def message(self) -> str:
        """The client-facing message, in step-ca's ``<prefix>: <reason>.`` form."""
        if not self.reason:
            return f"{self.prefix}."
        reason = self.reason.rstrip(".")
        return f"{self.prefix}: {reason}."


class BadRequest(StepCAError):
    status = 400
    prefix = "The request could not be completed"


class Unauthorized(StepCAError):
    status = 401
    prefix = "The request lacked necessary authorization to be completed"


class TokenAlreadyUsed(Unauthorized):
    """A one-time token's id was spent before (replay)."""

    def __init__(self, reason: str = "token already used") -> None:
        super().__init__(reason)


class Forbidden(StepCAError):
    status = 403
    prefix = "The request was forbidden by the certificate authority"


class NotFound(StepCAError):
    status = 404
    prefix = "The requested resource could not be found"

    @property
    def message(self) -> str:
        # step-ca returns lookup failures verbatim, e.g. root certificate with fingerprint "x" ...
        return self.reason or f"{self.prefix}."


class PayloadTooLarge(StepCAError):
    status = 413
    prefix = "The request could not be completed"


class NotImplementedYet(StepCAError):
    status = 501
    prefix = "The requested method is not implemented by the certificate authority"


class InternalError(StepCAError):
    status = 500
