"""Workflows that cross the apps' floors, each in one top-level action.

cancel => booking status (booking) => end the session (sessions) => deny-list its tokens
(relay control) => after the commit, push to relays and tell the browser. The action opens
the transaction and calls each floor in order, so the floors never call each other, and a
committed cancel always has its revocation and outbox rows.
"""

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from booking import services as booking_services
from booking.errors import rule_error
from booking.models import Booking, BookingStatus
from booking.models.bookings import ACTIVE_STATUSES
from booking.serializers import iso
from messaging import services as messaging
from relay_control.services import revocation_publish
from sessions_app import services as session_services
from sessions_app.models import IssuedToken, Session
from workflows import after_commit


@dataclass
class SessionState:
    session: Session
    booking: Booking
    code: str
    streams: list[dict]
    uis: list[dict]

    def as_dict(self) -> dict:
        return {
            "session": self.code,
            "booking": str(self.booking.id),
            "status": self.booking.status,
            "start": iso(self.booking.start),
            "end": iso(self.booking.end),
            "streams": self.streams,
            "uis": self.uis,
        }


def _lock(booking: Booking) -> Booking:
    """Locks the booking's row only, then reads it with its pool and experiment as committed.

    Locking the pool's and the experiment's rows too would hold up every booking of the pool
    until this transaction ends: a booking checks its foreign keys at its commit, which takes
    `FOR KEY SHARE` on those rows. The read is a statement of its own so that it sees a
    change committed while the lock waited (a move to another experiment, a cancellation).
    """
    list(Booking.objects.select_for_update().filter(pk=booking.pk).values_list("pk", flat=True))
    return Booking.objects.select_related("pool", "experiment").get(pk=booking.pk)


def _state(session: Session, booking: Booking, streams: list[dict]) -> SessionState:
    code = session_services.session_code(session)
    uis = session_services.ui_links(booking=booking, code=code, streams=streams) if streams else []
    return SessionState(session, booking, code, streams, uis)


def session_start_action(
    *, booking: Booking, by: AbstractBaseUser | None, now: datetime
) -> SessionState:
    with transaction.atomic():
        booking = _lock(booking)
        session = session_services.session_start(booking=booking, now=now, by=by)
        streams = session_services.issue_stream_tokens(
            session=session, booking=booking, now=now, by=by
        )
        return _state(session, booking, streams)


def session_refresh_action(
    *, session: Session, by: AbstractBaseUser | None, now: datetime
) -> SessionState:
    """The current state with fresh stream tokens (a page reload, a reconnect)."""
    with transaction.atomic():
        booking = _lock(session.booking)
        if session_services.booking_is_over(booking, now):
            raise rule_error("booking_over")
        streams = session_services.issue_stream_tokens(
            session=session, booking=booking, now=now, by=by
        )
        return _state(session, booking, streams)


def session_subset_action(
    *,
    session: Session,
    streams: list[str],
    scopes: list[str],
    ttl: int | None,
    by: AbstractBaseUser | None,
    now: datetime,
) -> list[dict]:
    with transaction.atomic():
        booking = _lock(session.booking)
        if session_services.booking_is_over(booking, now):
            raise rule_error("booking_over")
        wanted = session_services.subset_request(booking=booking, streams=streams, scopes=scopes)
        return session_services.issue_stream_tokens(
            session=session,
            booking=booking,
            now=now,
            by=by,
            kind=IssuedToken.Kind.SUBSET,
            only=wanted,
            exp=session_services.subset_expiry(booking=booking, ttl=ttl, now=now),
        )


def _revoke_session(
    *, booking: Booking, reason: str, now: datetime, by: object, exp: datetime
) -> None:
    session = Session.objects.filter(booking=booking).first()
    if session is None:
        return
    session_services.session_end(session=session, now=now)
    token_ids = list(session.tokens.values_list("jti", flat=True))
    revocation = revocation_publish(
        booking=booking, exp=exp, reason=reason, now=now, token_ids=token_ids, by=by
    )
    if revocation is not None:
        after_commit.revocation_published(revocation.pk)


def booking_cancel_action(
    *, booking: Booking, by: AbstractBaseUser | None, now: datetime, reason: str = ""
) -> Booking:
    """Cancel; a running booking's tokens are deny-listed and its session ends."""
    with transaction.atomic():
        booking, changed = booking_services.booking_cancel(
            booking=booking, by=by, reason=reason, now=now
        )
        if changed:
            # The tokens expire at the booking's end (after any extension): deny until then.
            _revoke_session(
                booking=booking, reason=reason or "cancelled", now=now, by=by, exp=booking.end
            )
            messaging.notify_cancelled(booking=booking, reason=reason, by=by, now=now)
    return booking


def booking_extend_action(
    *, booking: Booking, seconds: int | None, by: AbstractBaseUser | None, now: datetime
) -> Booking:
    """Extend; a running session gets fresh tokens with the later exp (old ones stay valid
    until they expire, so nothing disconnects at the hand-over)."""
    with transaction.atomic():
        booking = booking_services.booking_extend(booking=booking, seconds=seconds, now=now, by=by)
        messaging.notify_extended(booking=booking, now=now)
    return booking


def session_extend_action(
    *, session: Session, seconds: int | None, by: AbstractBaseUser | None, now: datetime
) -> SessionState:
    with transaction.atomic():
        booking_extend_action(booking=session.booking, seconds=seconds, by=by, now=now)
        return session_refresh_action(session=session, by=by, now=now)


def user_disable_action(
    *, user: AbstractBaseUser, by: AbstractBaseUser | None, now: datetime
) -> int:
    """Disable a user: no more logins, every current and future booking cancelled and every
    running session's tokens deny-listed. Returns how many bookings were cancelled."""
    with transaction.atomic():
        type(user).objects.filter(pk=user.pk).update(is_active=False)
        cancelled = 0
        for booking in Booking.objects.filter(user=user, status__in=ACTIVE_STATUSES, end__gt=now):
            booking_cancel_action(booking=booking, by=by, now=now, reason="user disabled")
            cancelled += 1
    return cancelled


def booking_staff_cancel_action(
    *, booking: Booking, by: AbstractBaseUser, reason: str, now: datetime
) -> Booking:
    return booking_cancel_action(
        booking=booking, by=by, now=now, reason=reason or "cancelled by staff"
    )


__all__ = [
    "BookingStatus",
    "SessionState",
    "booking_cancel_action",
    "booking_extend_action",
    "booking_staff_cancel_action",
    "session_extend_action",
    "session_refresh_action",
    "session_start_action",
    "session_subset_action",
    "user_disable_action",
]
