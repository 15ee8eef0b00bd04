"""Recording revocations (in the caller's transaction) and purging expired ones."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from booking.audit import audit_record
from booking.models import Booking, Relay
from relay_control.models import Revocation, RevocationCounter, RevocationDelivery


def _next_seq() -> int:
    counter, _ = RevocationCounter.objects.select_for_update().get_or_create(pk=1)
    counter.value += 1
    counter.save(update_fields=["value"])
    return counter.value


def relays_of(booking: Booking) -> list[Relay]:
    return list(Relay.objects.filter(streams__experiment_id=booking.experiment_id).distinct())


def revocation_publish(
    *,
    booking: Booking,
    exp: datetime,
    reason: str,
    now: datetime,
    token_ids: list[str] | None = None,
    jti: str = "",
    by: object = None,
) -> Revocation | None:
    """Deny-list a booking (or one token) for every relay its streams use.

    Must run inside the transaction that changes the booking, so a committed cancel always
    has its revocation and its outbox rows. Idempotent per booking and jti.
    """
    with transaction.atomic():
        return _publish(
            booking, exp=exp, reason=reason, now=now, token_ids=token_ids, jti=jti, by=by
        )


def _publish(
    booking: Booking,
    *,
    exp: datetime,
    reason: str,
    now: datetime,
    token_ids: list[str] | None,
    jti: str,
    by: object,
) -> Revocation | None:
    existing = Revocation.objects.filter(booking_id=booking.pk, jti=jti).first()
    if existing is not None:
        return None
    if exp <= now:
        return None  # the tokens are dead already
    revocation = Revocation.objects.create(
        seq=_next_seq(),
        booking_id=booking.pk,
        jti=jti,
        token_ids=token_ids or [],
        exp=exp,
        revoked_at=now,
        reason=reason[:64],
    )
    RevocationDelivery.objects.bulk_create(
        [
            RevocationDelivery(
                revocation=revocation,
                relay=relay,
                state=(
                    RevocationDelivery.State.PENDING
                    if relay.push_enabled
                    else RevocationDelivery.State.NOT_PUSHED
                ),
                next_attempt_at=now,
            )
            for relay in relays_of(booking)
        ]
    )
    audit_record(
        at=now,
        actor=by,
        action="revocation.publish",
        obj=booking,
        detail={"seq": revocation.seq, "reason": reason, "jti": token_ids or []},
    )
    return revocation


def purge_horizon(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.REVOCATION_LEEWAY_SECONDS)


def revocation_purge(*, now: datetime) -> int:
    """Drop entries whose tokens expired more than the leeway ago; never earlier."""
    with transaction.atomic():
        due = Revocation.objects.filter(exp__lt=purge_horizon(now))
        highest = due.order_by("-seq").values_list("seq", flat=True).first()
        if highest is None:
            return 0
        counter, _ = RevocationCounter.objects.select_for_update().get_or_create(pk=1)
        counter.purged_through = max(counter.purged_through, highest)
        counter.save(update_fields=["purged_through"])
        _, per_model = due.delete()
    return per_model.get("relay_control.Revocation", 0)
