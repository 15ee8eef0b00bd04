"""Error codes and the messages a user sees. Tests import these constants."""

from dataclasses import dataclass


@dataclass
class ApiError(Exception):
    """A refusal with a machine-readable code, a human message and an HTTP status."""

    code: str
    detail: str
    status: int = 422

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


MESSAGES = {
    "slot_taken": "That experiment is already booked for part of this time.",
    "outside_window": "Bookings in this pool are not open at that time.",
    "too_far_ahead": "That start is further ahead than this pool allows.",
    "start_in_past": "That start is in the past.",
    "too_short": "That booking is shorter than this pool's minimum.",
    "too_long": "That booking is longer than this pool's maximum.",
    "max_bookings": "You already hold as many bookings in this pool as it allows.",
    "quota_exceeded": "That would take you over your booking quota for this pool.",
    "not_member": "You are not a member of a group that may book this pool.",
    "experiment_unavailable": "That experiment is not available.",
    "not_started_yet": "This booking has not started yet.",
    "booking_over": "This booking is over or was cancelled.",
    "booking_over_gone": "This session is over or was cancelled.",
    "relay_unavailable": "The relay for this experiment is not configured.",
    "extension_blocked": "The experiment is booked straight after you; it cannot be extended.",
    "extension_limit": "That would extend the booking beyond what this pool allows.",
    "not_found": "Not found.",
    "not_authenticated": "Sign in, or send a valid credential.",
    "permission_denied": "You may not do that.",
    "throttled": "Too many attempts; wait a little and try again.",
    "invalid": "The request is not valid.",
    "bad_request": (
        "The request could not be read (a Host header this server does not answer to, for one)."
    ),
    "unknown_pool": "There is no such pool.",
    "unknown_experiment": "There is no such experiment in this pool.",
    "no_free_experiment": "Every experiment in this pool is booked for part of this time.",
    "bad_access_code": "That access code is not valid.",
    "server_busy": "The server is busy; try again.",
    "server_error": "Something went wrong on our side.",
}

STATUS = {
    "booking_over_gone": 410,
    "slot_taken": 409,
    "extension_blocked": 409,
    "not_started_yet": 409,
    "booking_over": 409,
    "not_member": 403,
    "not_found": 404,
}


# Codes that share a public code but not a status.
PUBLIC_CODE = {"booking_over_gone": "booking_over"}


def rule_error(code: str, detail: str | None = None) -> ApiError:
    return ApiError(
        code=PUBLIC_CODE.get(code, code),
        detail=detail or MESSAGES[code],
        status=STATUS.get(code, 422),
    )
