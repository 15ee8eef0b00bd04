"""The deny list (revocations), its per-relay deliveries (the push outbox), relay API tokens."""

from django.db import models

from booking.models import Relay


class RevocationCounter(models.Model):
    """One row. Locked in the revoking transaction, so `seq` values become visible in order:
    a reader that has seen N never later finds a smaller one (a database sequence can commit
    out of order)."""

    value = models.BigIntegerField(default=0)
    # The highest seq purged so far: a reader whose cursor is older needs a full snapshot.
    purged_through = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"revocation seq {self.value}"


class Revocation(models.Model):
    seq = models.BigIntegerField(unique=True)
    booking_id = models.UUIDField(db_index=True)
    jti = models.CharField(max_length=64, blank=True, help_text="Empty: the whole booking.")
    token_ids = models.JSONField(default=list, blank=True)
    exp = models.DateTimeField(db_index=True)
    revoked_at = models.DateTimeField()
    reason = models.CharField(max_length=64)
    relays = models.ManyToManyField(Relay, through="RevocationDelivery", related_name="revocations")

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.booking_id} ({self.reason})"


class RevocationDelivery(models.Model):
    """A revocation as one relay must hear of it: the row scopes the feed and is the outbox."""

    class State(models.TextChoices):
        PENDING = "pending", "pending"
        DELIVERED = "delivered", "delivered"
        EXPIRED = "expired", "expired (tokens dead before delivery)"
        NOT_PUSHED = "not_pushed", "not pushed (relay reads the feed)"

    revocation = models.ForeignKey(Revocation, on_delete=models.CASCADE, related_name="deliveries")
    relay = models.ForeignKey(Relay, on_delete=models.CASCADE, related_name="deliveries")
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "revocation deliveries"
        constraints = [
            models.UniqueConstraint(fields=["revocation", "relay"], name="delivery_unique")
        ]
        indexes = [
            models.Index(fields=["relay", "revocation"], name="delivery_relay_rev"),
            models.Index(fields=["state", "next_attempt_at"], name="delivery_due"),
        ]

    def __str__(self) -> str:
        return f"{self.revocation} -> {self.relay} [{self.state}]"


class RelayApiToken(models.Model):
    """An opaque credential a relay uses to read the feed; only its hash is kept."""

    relay = models.ForeignKey(Relay, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False, help_text="To recognise it.")
    created_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["relay", "-created_at"]
        verbose_name = "relay API token"

    def __str__(self) -> str:
        return f"{self.relay.slug} {self.prefix}…"
