"""Booking e-mails: the confirmation after a booking and the reminder before its start.

Each e-mail is claimed before it is sent: by inserting its EmailRecord (unique per booking
and kind) or, for a retry, by a conditional update of the record's lease. Only the claimant
sends, and `sent_at` is set once the backend has taken the message, so a retried job or two
overlapping sweeps never send one e-mail twice. A failure leaves `sent_at` empty and backs
off; the periodic job tries again.
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from email.mime.text import MIMEText
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import EmailMultiAlternatives
from django.db import close_old_connections
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.template.loader import render_to_string

from booking.ical import booking_ical, bookings_url
from booking.models import Booking, BookingStatus, EmailKind, EmailRecord
from booking.models.bookings import ACTIVE_STATUSES
from booking.tasks import send_confirmation

log = logging.getLogger(__name__)

CONFIRMATION_SUBJECT = "Booking confirmed: {experiment}, {start} ({reference})"
REMINDER_SUBJECT = "Starting soon: {experiment} at {time} ({reference})"
# How long one attempt may hold its claim before another worker may take over.
LEASE = timedelta(minutes=10)
MAX_ATTEMPTS = 8
MAX_BACKOFF = timedelta(hours=1)
# The periodic job catches up on confirmations of bookings made this recently.
PENDING_WINDOW = timedelta(days=1)
BATCH = 200


def user_time_zone(user: AbstractBaseUser) -> ZoneInfo:
    """The zone a user reads times in. There is no profile field yet: the site's zone."""
    return ZoneInfo(settings.TIME_ZONE)


def backoff(attempts: int) -> timedelta:
    return min(MAX_BACKOFF, timedelta(minutes=2 ** max(0, attempts - 1)))


def _when(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local:%A} {local.day} {local:%B %Y}, {local:%H:%M}"


def _one_line(text: str) -> str:
    return " ".join(text.split())  # a title must not break the Subject header


def _context(booking: Booking) -> dict:
    zone = user_time_zone(booking.user)
    return {
        "booking": booking,
        "name": booking.user.first_name or booking.user.get_username(),
        "start": _when(booking.start, zone),
        "end": _when(booking.end, zone),
        "start_time": f"{booking.start.astimezone(zone):%H:%M}",
        "time_zone": zone.key,
        "bookings_url": bookings_url(),
    }


def _calendar_part(booking: Booking, now: datetime) -> MIMEText:
    part = MIMEText(booking_ical([booking], now=now).decode(), "calendar", "utf-8")
    part.set_param("method", "PUBLISH")
    part.add_header(
        "Content-Disposition", "attachment", filename=f"booking-{booking.reference}.ics"
    )
    return part


def _message(booking: Booking, kind: str, now: datetime) -> EmailMultiAlternatives:
    context = _context(booking)
    experiment = _one_line(booking.experiment.title)
    if kind == EmailKind.CONFIRMATION:
        subject = CONFIRMATION_SUBJECT.format(
            experiment=experiment, start=context["start"], reference=booking.reference
        )
    else:
        subject = REMINDER_SUBJECT.format(
            experiment=experiment, time=context["start_time"], reference=booking.reference
        )
    template = f"booking/email/{kind}"
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"{template}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[booking.user.email],
    )
    message.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
    if kind == EmailKind.CONFIRMATION:
        message.attach(_calendar_part(booking, now))
    return message


def _claim(booking: Booking, kind: str, now: datetime) -> EmailRecord | None:
    """The record if this caller may send now; None if it is sent, being sent, or resting."""
    record, created = EmailRecord.objects.get_or_create(
        booking=booking,
        kind=kind,
        defaults={"created_at": now, "attempts": 1, "next_attempt_at": now + LEASE},
    )
    if created:
        return record
    won = EmailRecord.objects.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
        pk=record.pk,
        sent_at__isnull=True,
        attempts__lt=MAX_ATTEMPTS,
    ).update(attempts=F("attempts") + 1, next_attempt_at=now + LEASE)
    if not won:
        return None
    record.refresh_from_db()
    return record


def _deliver(booking: Booking, kind: str, now: datetime) -> bool:
    record = _claim(booking, kind, now)
    if record is None:
        return False
    try:
        _message(booking, kind, now).send()
    except Exception as error:  # any backend failure: record it, the next job retries
        retry_at = now + backoff(record.attempts)
        EmailRecord.objects.filter(pk=record.pk).update(
            last_error=f"{type(error).__name__}: {error}"[:300], next_attempt_at=retry_at
        )
        log.log(
            logging.ERROR if record.attempts >= MAX_ATTEMPTS else logging.WARNING,
            "%s e-mail for booking %s failed (attempt %d of %d)",
            kind,
            booking.reference,
            record.attempts,
            MAX_ATTEMPTS,
            exc_info=True,
        )
        return False
    EmailRecord.objects.filter(pk=record.pk).update(
        sent_at=now, last_error="", next_attempt_at=None
    )
    log.info("%s e-mail sent for booking %s", kind, booking.reference)
    return True


def _with_email() -> QuerySet[Booking]:
    # Users without an address get nothing: no record, no error.
    return Booking.objects.exclude(user__email="").select_related("user", "experiment", "pool")


def _not_due(kind: str, now: datetime) -> Exists:
    """Whether the booking's e-mail of `kind` is sent, in progress, resting or given up."""
    return Exists(
        EmailRecord.objects.filter(booking=OuterRef("pk"), kind=kind).filter(
            Q(sent_at__isnull=False) | Q(next_attempt_at__gt=now) | Q(attempts__gte=MAX_ATTEMPTS)
        )
    )


def booking_confirmation_send(booking_id: object, *, now: datetime) -> bool:
    """Send the confirmation of a current booking unless it was sent; True if this call sent it."""
    booking = _with_email().filter(pk=booking_id, status__in=ACTIVE_STATUSES, end__gt=now).first()
    if booking is None:
        return False
    return _deliver(booking, EmailKind.CONFIRMATION, now)


_mailer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mailer")


def _send_in_background(booking_id: str) -> None:
    try:
        send_confirmation(booking_id)
    except Exception:
        log.warning(
            "confirmation of booking %s left to the periodic job", booking_id, exc_info=True
        )
    finally:
        close_old_connections()


def booking_confirmation_enqueue(booking_id: object) -> None:
    """booking_create's on_commit hook; nothing here may fail or slow the booking.

    With a broker (production) the Celery worker's periodic sweep sends it
    (booking_confirmations_pending, every JOB_INTERVAL_SECONDS), so the web process spends
    nothing on it. Without one (the embedded default) a background thread of this process
    sends it; the test settings send it inline.
    """
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        return
    try:
        if settings.MAIL_IN_BACKGROUND:
            _mailer.submit(_send_in_background, str(booking_id))
        else:
            send_confirmation.delay(str(booking_id))
    except Exception:
        log.warning(
            "confirmation of booking %s left to the periodic job", booking_id, exc_info=True
        )


def booking_confirmations_pending(*, now: datetime, limit: int = BATCH) -> int:
    """The periodic catch-up: unsent confirmations of recent bookings. Returns the count sent."""
    due = (
        _with_email()
        .filter(created_at__gte=now - PENDING_WINDOW, status__in=ACTIVE_STATUSES, end__gt=now)
        .exclude(_not_due(EmailKind.CONFIRMATION, now))
        .order_by("created_at")[:limit]
    )
    return sum(_deliver(booking, EmailKind.CONFIRMATION, now) for booking in due)


def booking_reminders_send(*, now: datetime, limit: int = BATCH) -> int:
    """Remind of bookings starting within BOOKING_REMINDER_BEFORE seconds. Returns the count sent.

    A booking made less than that long before its start gets no reminder: its confirmation
    has just told the student.
    """
    before = timedelta(seconds=settings.BOOKING_REMINDER_BEFORE)
    due = (
        _with_email()
        .filter(
            status=BookingStatus.BOOKED,
            start__gt=now,
            start__lte=now + before,
            created_at__lte=F("start") - before,
        )
        .exclude(_not_due(EmailKind.REMINDER, now))
        .order_by("start")[:limit]
    )
    return sum(_deliver(booking, EmailKind.REMINDER, now) for booking in due)
