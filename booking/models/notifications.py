"""E-mails about a booking: one row per (booking, kind), so that each is sent at most once."""

from django.db import models

from booking.models.bookings import Booking


class EmailKind(models.TextChoices):
    CONFIRMATION = "confirmation", "confirmation"
    REMINDER = "reminder", "reminder"


class EmailRecord(models.Model):
    """The claim on one e-mail and its outcome.

    Whoever inserts the row, or later moves `next_attempt_at` forward with a conditional
    update, holds the claim until then; `sent_at` is set only once the backend has accepted
    the message.
    """

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="emails")
    kind = models.CharField(max_length=16, choices=EmailKind.choices)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    # A lease while an attempt runs, then the back-off after a failure.
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["booking", "kind"], name="emailrecord_unique_kind")
        ]

    def __str__(self) -> str:
        state = "sent" if self.sent_at else f"pending ({self.attempts} attempts)"
        return f"{self.kind} for {self.booking_id}: {state}"
