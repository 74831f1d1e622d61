"""Typed errors of the certificate authority.

Each error carries the HTTP status step-ca uses for it and a message safe to show a client:
it never contains a secret (a token, a password, a key). The Falcon app renders every
``StepCAError`` once, as ``{"status": N, "message": "..."}``.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "BadRequest",
    "ConfigError",
    "Forbidden",
    "InternalError",
    "NotFound",
    "NotImplementedYet",
    "PayloadTooLarge",
    "ServiceUnavailable",
    "StepCAError",
    "TokenAlreadyUsed",
    "Unauthorized",
    "go_list",
    "shown",
]


# What step-ca's generic messages end with: the client learns no more than the status.
SEE_LOGS = "Please see the certificate authority logs for more info."


def shown(value: object, limit: int = 64) -> str:
    """A client's value as a message may show it: quoted, with control and other invisible
    characters escaped (so it cannot forge a log line), cut to ``limit`` characters."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        return repr(text[:limit]) + "..."
    return repr(text)


def go_list(values: Iterable[object]) -> str:
    """Values as Go's ``%v`` prints a slice, in the order given: ``[a.example b.example]``."""
    return "[" + " ".join(map(str, values)) + "]"


class ConfigError(ValueError):
    """ca.json is missing, unreadable or invalid; each of ``problems`` says which field. The
    message lists them all, one per line. No client sees it: it stops the CA at start-up.

    Defined here rather than in ``stepca.config``, which re-exports it, so that ``stepca.store``
    (whose ``StoreStartError`` is one) imports no configuration schema (decision 0043)."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


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
    """Whatever was not found, the client reads step-ca's generic message; the reason goes to
    the CA's log only."""

    status = 404
    prefix = "The requested resource could not be found"

    @property
    def message(self) -> str:
        return f"{self.prefix}. {SEE_LOGS}"


class PayloadTooLarge(StepCAError):
    status = 413
    prefix = "The request could not be completed"


class NotImplementedYet(StepCAError):
    status = 501
    prefix = "The requested method is not implemented by the certificate authority"


class ServiceUnavailable(StepCAError):
    """A failure that should pass (a database restarting): the client may retry after
    ``retry_after`` seconds, sent as ``Retry-After``."""

    status = 503
    prefix = "The certificate authority is temporarily unavailable"
    retry_after = 5


class InternalError(StepCAError):
    """A failure the client cannot fix: the generic message, the reason in the log."""

    status = 500

    @property
    def message(self) -> str:
        return f"{self.prefix}. {SEE_LOGS}"
