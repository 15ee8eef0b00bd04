"""Sessions (what a started booking becomes), the stream tokens issued for them, and our
asymmetric signing keys."""

import uuid

from django.db import models

from booking.models import Booking, Relay


class Session(models.Model):
    """One per booking. The code is derived from a server key and `salt`; only its hash is
    stored, so the database alone never yields a usable code."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    booking = models.OneToOneField(Booking, on_delete=models.CASCADE, related_name="session")
    salt = models.CharField(max_length=32, editable=False)
    code_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"session of {self.booking.reference}"


class IssuedToken(models.Model):
    """A record of a stream token we signed (never the token itself)."""

    class Kind(models.TextChoices):
        STREAM = "stream", "stream"
        SUBSET = "subset", "subset"

    jti = models.CharField(max_length=64, primary_key=True)
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="tokens")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.STREAM)
    stream = models.CharField(max_length=64)
    relay = models.ForeignKey(Relay, on_delete=models.SET_NULL, null=True, related_name="+")
    scopes = models.JSONField(default=list)
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["session", "issued_at"], name="token_session_issued")]

    def __str__(self) -> str:
        return f"{self.kind} token {self.jti} ({self.stream})"


class SigningKey(models.Model):
    """An asymmetric key for relays that verify with our JWKS.

    Life: created (published as the next key) -> active (signs) -> retired (still published
    until every token it signed has expired) -> dropped from the JWKS.
    """

    class Algorithm(models.TextChoices):
        EDDSA = "EdDSA", "EdDSA (Ed25519)"
        ES256 = "ES256", "ES256 (P-256)"

    kid = models.CharField(max_length=64, unique=True)
    algorithm = models.CharField(max_length=8, choices=Algorithm.choices)
    private_encrypted = models.BinaryField(editable=False)
    public_jwk = models.JSONField(editable=False)
    created_at = models.DateTimeField()
    activated_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    last_exp = models.DateTimeField(
        null=True, blank=True, help_text="The latest exp of any token this key signed."
    )

    class Meta:
        ordering = ["algorithm", "-created_at"]

    def __str__(self) -> str:
        return f"{self.algorithm} {self.kid}"
