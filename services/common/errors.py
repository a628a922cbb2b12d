"""Why a command was refused, as closed kinds an HTTP client and a dead letter share.

Handlers raise these; the HTTP layer renders them as RFC 9457 problems, the Kafka command
consumer as dead-letter headers. `kind` is a closed label (safe for metrics); `detail`
says what to do and names fields or ids, never personal data.
"""

from __future__ import annotations


class Rejected(Exception):
    status = 422
    kind = "invalid"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class Invalid(Rejected):
    status = 422
    kind = "invalid"


class NotFound(Rejected):
    status = 404
    kind = "not_found"


class Conflict(Rejected):
    status = 409
    kind = "conflict"


class NotYetKnown(Conflict):
    """The household's enrolment has not reached this service yet: retry shortly."""

    kind = "household_not_yet_known"
    retry_after_seconds = 2
