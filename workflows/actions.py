"""Workflows that cross the apps' floors, each in one top-level action.

cancel => booking status (booking) => revoke tokens (sessions, relay control) => tell the
browser (messaging). The action opens the transaction, calls each floor's service in order,
and schedules pushes and events with on_commit, so the floors never call each other.
"""

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from booking import services as booking_services
from booking.models import Booking


def booking_cancel_action(
    *, booking: Booking, by: AbstractBaseUser | None, now: datetime, reason: str = ""
) -> Booking:
    with transaction.atomic():
        booking, _changed = booking_services.booking_cancel(
            booking=booking, by=by, reason=reason, now=now
        )
    return booking


def booking_extend_action(
    *, booking: Booking, seconds: int | None, by: AbstractBaseUser | None, now: datetime
) -> Booking:
    with transaction.atomic():
        booking = booking_services.booking_extend(booking=booking, seconds=seconds, now=now, by=by)
    return booking
