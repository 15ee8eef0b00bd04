"""Every periodic job, in order. Each reads due work from the database and is idempotent."""

from django.db import close_old_connections
from django.utils import timezone

from booking.notifications import booking_confirmations_pending, booking_reminders_send
from booking.services import booking_sweep
from messaging.services import session_timers_sweep
from relay_control.push import deliver_due
from relay_control.services import revocation_purge
from web.login_sessions import login_sessions_purge


def run_periodic_jobs() -> dict:
    close_old_connections()
    try:
        now = timezone.now()
        return {
            "bookings": booking_sweep(now=now),
            "session_timers": session_timers_sweep(now=now),
            "confirmations": booking_confirmations_pending(now=now),
            "reminders": booking_reminders_send(now=now),
            "deliveries": deliver_due(now=now),
            "revocations_purged": revocation_purge(now=now),
            "login_sessions_purged": login_sessions_purge(now=now),
        }
    finally:
        close_old_connections()
