"""The periodic sweep: release no-shows and end bookings whose time is up."""

import logging
from datetime import datetime, timedelta

from django.db import transaction

from booking.models import Booking, BookingStatus

log = logging.getLogger(__name__)


def booking_sweep(*, now: datetime) -> dict[str, int]:
    """Idempotent: each row is claimed with a conditional update, so concurrent sweeps are safe."""
    released = ended = 0
    due = (
        Booking.objects.filter(status=BookingStatus.BOOKED, start__lte=now)
        .select_related("pool")
        .only("id", "start", "end", "pool__grace_period")
    )
    for booking in due.iterator():
        if (
            now >= booking.start + timedelta(seconds=booking.pool.grace_period)
            or now >= booking.end
        ):
            with transaction.atomic():
                released += Booking.objects.filter(
                    pk=booking.pk, status=BookingStatus.BOOKED
                ).update(status=BookingStatus.NO_SHOW)
    with transaction.atomic():
        ended = Booking.objects.filter(status=BookingStatus.STARTED, end__lte=now).update(
            status=BookingStatus.ENDED
        )
    if released or ended:
        log.info("sweep: %d no-shows released, %d bookings ended", released, ended)
    return {"no_show": released, "ended": ended}
