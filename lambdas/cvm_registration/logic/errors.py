"""Outcomes other than success, each with its HTTP status. The handler turns them into the
seed-shaped error body; none carries a stack trace or a secret."""

from __future__ import annotations


class Refusal(Exception):
    status_code = 400
    field: str | None = None
    retry_after: int | None = None  # seconds, when trying again may succeed

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadField(Refusal):
    """400: the request is well-formed JSON but a field cannot be used."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Forbidden(Refusal):
    """403, always the same body: the identity is not proven (or not allowed)."""

    status_code = 403


class Conflict(Refusal):
    """409: already registered, or another request for this device is in progress."""

    status_code = 409

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(Refusal):
    """503: an AWS dependency failed; everything this request did was undone, retry later."""

    status_code = 503
    retry_after = 5
