"""Booking e-mails: a confirmation with a calendar file, a reminder before the start, each once."""

from datetime import timedelta
from email.message import Message
from smtplib import SMTPServerDisconnected

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone
from icalendar import Calendar

from booking import notifications
from booking.ical import booking_ical
from booking.models import Booking, BookingStatus, EmailKind, EmailRecord
from booking.notifications import (
    CONFIRMATION_SUBJECT,
    LEASE,
    MAX_ATTEMPTS,
    REMINDER_SUBJECT,
    booking_confirmation_send,
    booking_confirmations_pending,
    booking_reminders_send,
    user_time_zone,
)
from tests.booking.test_api_bookings import book
from tests.conftest import NOW
from tests.factories import make_booking

pytestmark = pytest.mark.usefixtures("frozen")

BOOKINGS_URL = "http://localhost:8000/bookings/"
LOCMEM = "django.core.mail.backends.locmem.EmailBackend"


class BrokenBackend(BaseEmailBackend):
    """A mail server that is down."""

    def send_messages(self, email_messages):
        raise SMTPServerDisconnected("the mail server went away")


BROKEN = f"{__name__}.BrokenBackend"


def book_via_api(client, django_capture_on_commit_callbacks, **times) -> Booking:
    with django_capture_on_commit_callbacks(execute=True):
        response = book(client, **times)
    assert response.status_code == 201, response.content
    return Booking.objects.select_related("experiment", "pool").get(pk=response.json()["id"])


def calendar_part(message) -> Message:
    parts = [p for p in message.message().walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1
    return parts[0]


def html_of(message) -> str:
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return html


def confirmation(booking: Booking) -> EmailRecord:
    return EmailRecord.objects.get(booking=booking, kind=EmailKind.CONFIRMATION)


def test_a_new_booking_gets_one_confirmation(
    student_client, lab, django_capture_on_commit_callbacks
):
    booking = book_via_api(student_client, django_capture_on_commit_callbacks, start=60, end=80)

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["sam@example.org"]
    assert message.subject == CONFIRMATION_SUBJECT.format(
        experiment="Pend00", start="Monday 2 March 2026, 10:00", reference=booking.reference
    )
    for text in (message.body, html_of(message)):
        assert booking.reference in text
        assert "Pend00" in text and "Pendulums" in text
        assert "Monday 2 March 2026, 10:00" in text
        assert "Monday 2 March 2026, 10:20" in text
        assert "UTC time zone" in text
        assert BOOKINGS_URL in text
        assert "choose Cancel" in text

    part = calendar_part(message)
    assert part.get_param("method") == "PUBLISH"
    assert part.get_filename() == f"booking-{booking.reference}.ics"
    [event] = Calendar.from_ical(part.get_payload(decode=True)).events
    assert event.start == booking.start == NOW + timedelta(minutes=60)
    assert event.end == booking.end
    assert event.uid == f"{booking.pk}@localhost"
    assert event.get("SUMMARY") == f"Pend00 ({booking.reference})"
    assert confirmation(booking).sent_at == NOW


def test_sending_again_sends_nothing(student_client, lab, django_capture_on_commit_callbacks):
    booking = book_via_api(student_client, django_capture_on_commit_callbacks)

    assert booking_confirmation_send(booking.pk, now=NOW) is False
    later = NOW + timedelta(minutes=1)
    assert booking_confirmation_send(booking.pk, now=later) is False
    assert booking_confirmations_pending(now=later) == 0
    assert len(mail.outbox) == 1
    assert confirmation(booking).attempts == 1


def test_a_failed_send_is_retried_by_a_later_call(
    student_client, lab, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = BROKEN
    booking = book_via_api(student_client, django_capture_on_commit_callbacks)

    record = confirmation(booking)
    assert record.sent_at is None and record.attempts == 1
    assert "went away" in record.last_error
    assert mail.outbox == []

    settings.EMAIL_BACKEND = LOCMEM
    # It rests for a moment after a failure, then the periodic job sends it.
    assert booking_confirmations_pending(now=NOW + timedelta(seconds=30)) == 0
    assert booking_confirmations_pending(now=NOW + timedelta(minutes=1)) == 1
    assert len(mail.outbox) == 1
    record.refresh_from_db()
    assert record.sent_at is not None and record.attempts == 2 and record.last_error == ""
    assert booking_confirmations_pending(now=NOW + timedelta(minutes=5)) == 0
    assert len(mail.outbox) == 1


def test_it_gives_up_after_the_last_attempt(lab, settings):
    settings.EMAIL_BACKEND = BROKEN
    booking = make_booking(lab.student, lab.pool, lab.pend00, NOW + timedelta(days=1))
    now = NOW
    for _ in range(MAX_ATTEMPTS):
        assert booking_confirmation_send(booking.pk, now=now) is False
        now += timedelta(hours=1)
    settings.EMAIL_BACKEND = LOCMEM
    assert booking_confirmations_pending(now=now) == 0
    assert booking_confirmation_send(booking.pk, now=now) is False
    assert confirmation(booking).attempts == MAX_ATTEMPTS
    assert mail.outbox == []


def test_an_attempt_in_progress_elsewhere_is_left_alone(lab):
    booking = make_booking(lab.student, lab.pool, lab.pend00, NOW + timedelta(hours=1))
    EmailRecord.objects.create(
        booking=booking,
        kind=EmailKind.CONFIRMATION,
        created_at=NOW,
        attempts=1,
        next_attempt_at=NOW + LEASE,
    )
    assert booking_confirmation_send(booking.pk, now=NOW) is False
    assert booking_confirmations_pending(now=NOW) == 0
    assert mail.outbox == []
    # A worker that died mid-send loses its claim when the lease runs out.
    assert booking_confirmations_pending(now=NOW + LEASE) == 1
    assert len(mail.outbox) == 1


def test_a_booking_survives_a_broker_that_is_down(
    student_client, lab, monkeypatch, django_capture_on_commit_callbacks
):
    class BrokerDown:
        def delay(self, *args):
            raise ConnectionRefusedError("no broker")

    monkeypatch.setattr(notifications, "send_confirmation", BrokerDown())
    booking = book_via_api(student_client, django_capture_on_commit_callbacks)

    assert mail.outbox == []
    assert not EmailRecord.objects.exists()
    assert booking_confirmations_pending(now=NOW + timedelta(seconds=15)) == 1
    assert mail.outbox[0].to == ["sam@example.org"]
    assert booking.reference in mail.outbox[0].body


def test_catching_up_skips_old_and_cancelled_bookings(lab):
    old = make_booking(
        lab.student,
        lab.pool,
        lab.pend00,
        NOW + timedelta(hours=2),
        created_at=NOW - timedelta(days=2),
    )
    cancelled = make_booking(
        lab.student, lab.pool, lab.pend01, NOW + timedelta(hours=2), status=BookingStatus.CANCELLED
    )
    assert booking_confirmations_pending(now=NOW) == 0
    assert booking_confirmation_send(cancelled.pk, now=NOW) is False
    assert mail.outbox == []
    assert not EmailRecord.objects.filter(booking__in=[old, cancelled]).exists()


def test_times_are_shown_in_the_users_time_zone(lab, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    assert user_time_zone(lab.student).key == "Europe/Berlin"
    booking = make_booking(lab.student, lab.pool, lab.pend00, NOW + timedelta(hours=1))

    assert booking_confirmation_send(booking.pk, now=NOW) is True
    message = mail.outbox[0]
    assert "Monday 2 March 2026, 11:00" in message.body  # 10:00 UTC is 11:00 in Berlin
    assert "Europe/Berlin time zone" in message.body
    [event] = Calendar.from_ical(calendar_part(message).get_payload(decode=True)).events
    assert event.start == booking.start and event.start.utcoffset() == timedelta(0)


def test_a_user_without_an_email_address_gets_nothing(
    student2_client, lab, django_capture_on_commit_callbacks
):
    booking = book_via_api(student2_client, django_capture_on_commit_callbacks, start=60, end=70)
    assert booking_confirmation_send(booking.pk, now=NOW) is False
    assert booking_confirmations_pending(now=NOW) == 0
    assert booking_reminders_send(now=NOW + timedelta(minutes=45)) == 0
    assert mail.outbox == []
    assert not EmailRecord.objects.exists()


def test_reminders_go_once_to_bookings_starting_soon(lab, settings):
    settings.BOOKING_REMINDER_BEFORE = 1800
    minutes = timedelta(minutes=1)
    due = make_booking(lab.student, lab.pool, lab.pend00, NOW + 20 * minutes)
    too_late = make_booking(lab.student, lab.pool, lab.pend01, NOW + 5 * minutes, created_at=NOW)
    make_booking(
        lab.student, lab.pool, lab.hidden, NOW + 20 * minutes, status=BookingStatus.CANCELLED
    )
    later = make_booking(lab.student, lab.pool, lab.pend00, NOW + 45 * minutes)
    make_booking(lab.student, lab.pool, lab.hidden, NOW - 2 * minutes)  # already started

    assert booking_reminders_send(now=NOW) == 1
    [message] = mail.outbox
    assert message.to == ["sam@example.org"]
    assert message.subject == REMINDER_SUBJECT.format(
        experiment="Pend00", time="09:20", reference=due.reference
    )
    assert due.reference in message.body and BOOKINGS_URL in html_of(message)

    assert booking_reminders_send(now=NOW + minutes) == 0
    assert booking_reminders_send(now=NOW + 15 * minutes) == 1
    assert mail.outbox[1].subject.endswith(f"({later.reference})")
    assert booking_reminders_send(now=NOW + 16 * minutes) == 0
    assert len(mail.outbox) == 2
    assert not EmailRecord.objects.filter(booking=too_late).exists()


def test_a_failed_reminder_is_sent_by_the_next_run(lab, settings):
    booking = make_booking(lab.student, lab.pool, lab.pend00, NOW + timedelta(minutes=20))
    settings.EMAIL_BACKEND = BROKEN
    assert booking_reminders_send(now=NOW) == 0
    record = EmailRecord.objects.get(booking=booking, kind=EmailKind.REMINDER)
    assert record.sent_at is None and record.last_error

    settings.EMAIL_BACKEND = LOCMEM
    assert booking_reminders_send(now=NOW + timedelta(minutes=2)) == 1
    assert booking_reminders_send(now=NOW + timedelta(minutes=3)) == 0
    assert len(mail.outbox) == 1


def test_the_calendar_round_trips_through_icalendar(lab):
    booked = make_booking(lab.student, lab.pool, lab.pend00, NOW + timedelta(hours=1))
    cancelled = make_booking(
        lab.student, lab.pool, lab.pend01, NOW + timedelta(hours=2), status=BookingStatus.CANCELLED
    )
    raw = booking_ical([booked, cancelled], now=NOW)

    assert b"DTSTART:20260302T100000Z" in raw
    calendar = Calendar.from_ical(raw)
    assert calendar.get("METHOD") == "PUBLISH"
    first, second = calendar.events
    assert first.uid == f"{booked.pk}@localhost"
    assert (first.start, first.end) == (booked.start, booked.end)
    assert first.get("SUMMARY") == f"Pend00 ({booked.reference})"
    assert first.get("URL") == BOOKINGS_URL
    assert booked.reference in first.get("DESCRIPTION")
    assert first.get("STATUS") == "CONFIRMED" and second.get("STATUS") == "CANCELLED"
    assert Calendar.from_ical(calendar.to_ical()).to_ical() == calendar.to_ical()


@pytest.mark.django_db(transaction=True)
def test_without_a_broker_the_confirmation_leaves_the_request_and_still_arrives(
    lab, student_client, settings
):
    import time as _time

    settings.MAIL_IN_BACKGROUND = True
    mail.outbox.clear()
    start = timezone.now() + timedelta(hours=2)
    response = student_client.post(
        "/api/v1/bookings/",
        {
            "pool": "pendulums",
            "experiment": "pend00",
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=10)).isoformat(),
        },
        content_type="application/json",
    )
    assert response.status_code == 201
    deadline = _time.monotonic() + 10
    while not mail.outbox and _time.monotonic() < deadline:
        _time.sleep(0.02)  # polling the outbox, bounded by the deadline
    assert len(mail.outbox) == 1
    assert response.json()["reference"] in mail.outbox[0].body


def test_with_a_broker_the_web_process_leaves_confirmations_to_the_worker_sweep(
    student_client, lab, settings, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    booking = book_via_api(student_client, django_capture_on_commit_callbacks)
    assert mail.outbox == []
    assert booking_confirmations_pending(now=NOW + timedelta(seconds=15)) == 1
    assert booking.reference in mail.outbox[0].body
