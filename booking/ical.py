"""Bookings as iCalendar (RFC 5545): the e-mail attachment now, a per-user feed later."""

from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone
from icalendar import Calendar, Event

from booking.models import Booking, BookingStatus


def platform_host() -> str:
    return urlsplit(settings.PLATFORM_URL).hostname or "localhost"


def bookings_url() -> str:
    """Where students see and cancel their bookings."""
    return f"{settings.PLATFORM_URL}/bookings/"


def booking_event(booking: Booking, *, stamp: datetime) -> Event:
    title = booking.experiment.title
    cancelled = booking.status == BookingStatus.CANCELLED
    return Event.new(
        # Stable per booking, so a calendar updates the event instead of adding another.
        uid=f"{booking.pk}@{platform_host()}",
        stamp=stamp.astimezone(UTC),
        start=booking.start.astimezone(UTC),
        end=booking.end.astimezone(UTC),
        summary=f"{title} ({booking.reference})",
        description=(
            f"Booking {booking.reference}: {title} in {booking.pool.title}.\n"
            f"Your bookings, and how to cancel: {bookings_url()}"
        ),
        url=bookings_url(),
        status="CANCELLED" if cancelled else "CONFIRMED",
    )


def booking_ical(bookings: Iterable[Booking], *, now: datetime | None = None) -> bytes:
    """One VCALENDAR with a VEVENT per booking (experiment and pool should be selected)."""
    stamp = now or timezone.now()
    calendar = Calendar()
    calendar.add("prodid", f"-//{platform_host()}//Lab bookings//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    for booking in bookings:
        calendar.add_component(booking_event(booking, stamp=stamp))
    return calendar.to_ical()
