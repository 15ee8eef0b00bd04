"""The revocation feed a relay polls: its own entries, in seq order."""

from dataclasses import dataclass

from relay_control.models import RevocationCounter, RevocationDelivery


@dataclass(frozen=True)
class Cursor:
    value: int
    purged_through: int


def feed_cursor() -> Cursor:
    row = RevocationCounter.objects.filter(pk=1).values_list("value", "purged_through").first()
    return Cursor(*row) if row else Cursor(0, 0)


def feed_entries(*, relay_id: int, since: int | None, upto: int) -> list[dict]:
    """Entries for the relay with since < seq <= upto (every one when since is None)."""
    rows = RevocationDelivery.objects.filter(relay_id=relay_id, revocation__seq__lte=upto)
    if since is not None:
        rows = rows.filter(revocation__seq__gt=since)
    entries = []
    for seq, booking_id, jti, exp, revoked_at, reason in rows.order_by(
        "revocation__seq"
    ).values_list(
        "revocation__seq",
        "revocation__booking_id",
        "revocation__jti",
        "revocation__exp",
        "revocation__revoked_at",
        "revocation__reason",
    ):
        entry = {
            "seq": seq,
            "booking_id": str(booking_id),
            "exp": int(exp.timestamp()),
            "revoked_at": int(revoked_at.timestamp()),
            "reason": reason,
        }
        if jti:
            entry["jti"] = jti
        entries.append(entry)
    return entries
