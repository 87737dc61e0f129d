"""Domain errors; the web layer maps each to an HTTP status in one place."""


class DomainError(Exception):
    """Base class; `field` names the input at fault, when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(DomainError):
    """Input that can never be accepted as sent (HTTP 400)."""


class NotFound(DomainError):
    """The addressed record does not exist or is not visible (HTTP 404)."""


class Conflict(DomainError):
    """The request contradicts the current state (HTTP 409)."""


class Forbidden(DomainError):
    """The user's role may not do this (HTTP 403).

    Only for actions whose existence is no secret, such as admin pages;
    records outside a user's scope raise NotFound, so ids do not leak.
    """


class NotConfigured(DomainError):
    """A setting the action needs is empty (HTTP 503); `field` names it."""


class UpstreamFailed(DomainError):
    """A service Touchline called returned an error or no answer (HTTP 502)."""
