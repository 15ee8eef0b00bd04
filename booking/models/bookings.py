"""Bookings: one user, one experiment of one pool, [start, end) half-open."""

import uuid

from django.conf import settings
from django.db import models

from booking.models.catalogue import Experiment, Pool


class BookingStatus(models.TextChoices):
    BOOKED = "booked", "booked"
    STARTED = "started", "started"
    CANCELLED = "cancelled", "cancelled"
    ENDED = "ended", "ended"
    NO_SHOW = "no_show", "no show"


ACTIVE_STATUSES = (BookingStatus.BOOKED, BookingStatus.STARTED)


class Booking(models.Model):
    # Opaque to clients and relays (who see it as a string); not guessable, not a counter.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    reference = models.CharField(max_length=6, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bookings"
    )
    pool = models.ForeignKey(Pool, on_delete=models.PROTECT, related_name="bookings")
    experiment = models.ForeignKey(Experiment, on_delete=models.PROTECT, related_name="bookings")
    start = models.DateTimeField()
    end = models.DateTimeField()
    # The end as first booked: extensions are measured against it.
    booked_end = models.DateTimeField()
    status = models.CharField(
        max_length=10, choices=BookingStatus.choices, default=BookingStatus.BOOKED
    )
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cancel_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["start"]
        indexes = [
            # Overlap checks and availability: one experiment's bookings by time.
            models.Index(fields=["experiment", "end", "start"], name="booking_exp_time"),
            # A user's limits in a pool (max bookings, quota) and "my bookings".
            models.Index(fields=["user", "pool", "end"], name="booking_user_pool_end"),
            models.Index(fields=["user", "end"], name="booking_user_end"),
            # The sweeper: due no-shows and endings.
            models.Index(fields=["status", "start"], name="booking_status_start"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gt=models.F("start")), name="booking_end_after_start"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.experiment_id} {self.start:%Y-%m-%d %H:%M}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES
