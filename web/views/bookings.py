"""My bookings, a booking as an .ics file, and the private calendar feed."""

from dataclasses import dataclass
from datetime import datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from booking import selectors as booking_selectors
from booking.ical import booking_ical
from booking.models import Booking
from booking.rules import describe_duration
from web import messages as text
from web import selectors
from web.services import calendar_feed_rotate

ICS_TYPE = "text/calendar; charset=utf-8"


@dataclass
class BookingRow:
    """A booking with what the page may offer for it now."""

    booking: Booking
    current: bool
    can_cancel: bool
    can_start: bool
    can_extend: bool
    extend_step_text: str


def _row(booking: Booking, now: datetime) -> BookingRow:
    live = booking.is_active and booking.end > now
    return BookingRow(
        booking=booking,
        current=live and booking.start <= now,
        can_cancel=live,
        # Upcoming ones too: the page shows the button once the start has come.
        can_start=live,
        can_extend=live and booking.pool.max_extension > 0,
        extend_step_text=describe_duration(booking.pool.extend_step),
    )


@login_required
@require_GET
def my_bookings(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    upcoming, past = selectors.bookings_for_page(user=request.user, now=now)
    token = selectors.calendar_feed_token_for_user(request.user)
    feed_url = None
    if token is not None:
        feed_url = request.build_absolute_uri(reverse("web:calendar-feed", args=[token]))
    return render(
        request,
        "web/bookings.html",
        {
            "upcoming": [_row(b, now) for b in upcoming],
            "past": [_row(b, now) for b in past],
            "feed_url": feed_url,
            "is_guest": selectors.user_is_guest(request.user),
        },
    )


def _ics(bookings: list[Booking], filename: str, *, now: datetime) -> HttpResponse:
    response = HttpResponse(booking_ical(bookings, now=now), content_type=ICS_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_GET
def booking_ics(request: HttpRequest, booking_id: object) -> HttpResponse:
    booking = booking_selectors.booking_get_for_user(user=request.user, booking_id=booking_id)
    if booking is None:
        raise Http404("No such booking")
    return _ics([booking], f"booking-{booking.reference}.ics", now=timezone.now())


@login_required
@require_POST
def calendar_feed_new(request: HttpRequest) -> HttpResponse:
    had_feed = selectors.calendar_feed_token_for_user(request.user) is not None
    calendar_feed_rotate(user=request.user, now=timezone.now())
    messages.success(request, text.FEED_ROTATED if had_feed else text.FEED_CREATED)
    return redirect(reverse("web:bookings") + "#calendar-feed")


@require_GET
def calendar_feed(request: HttpRequest, token: str) -> HttpResponse:
    """The feed a calendar app polls: no cookie, the token in the address is the key."""
    user = selectors.calendar_feed_user(token)
    if user is None:
        raise Http404("No such feed")
    now = timezone.now()
    bookings = list(booking_selectors.booking_list_for_user(user=user, now=now))
    return _ics(bookings, "lab-bookings.ics", now=now)
