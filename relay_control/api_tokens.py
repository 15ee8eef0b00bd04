"""Relay API tokens: opaque, high entropy, shown once, stored as a SHA-256 hash.

A token is "r_" + 43 characters; the prefix keeps it apart from session codes ("s_") and
JWTs, so one kind can never be used in place of another.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Expression

from booking.audit import audit_record
from booking.models import Relay
from relay_control.models import RelayApiToken

PREFIX = "r_"
TOKEN_LENGTH = len(PREFIX) + 43
LAST_USED_RESOLUTION = timedelta(seconds=60)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def relay_token_create(
    *, relay: Relay, now: datetime, name: str = "", by: object = None
) -> tuple[RelayApiToken, str]:
    """Make a token; the plain value is returned once and never stored."""
    token = PREFIX + secrets.token_urlsafe(32)
    row = RelayApiToken.objects.create(
        relay=relay,
        name=name,
        token_hash=token_hash(token),
        prefix=token[:8],
        created_at=now,
    )
    audit_record(
        at=now, actor=by, action="relay_token.create", obj=row, detail={"relay": relay.slug}
    )
    return row, token


def relay_token_revoke(*, row: RelayApiToken, now: datetime, by: object = None) -> None:
    if row.revoked_at is None:
        RelayApiToken.objects.filter(pk=row.pk, revoked_at__isnull=True).update(revoked_at=now)
        audit_record(at=now, actor=by, action="relay_token.revoke", obj=row)


@dataclass(frozen=True)
class RelayIdentity:
    token_id: int
    relay_id: int
    extra: tuple = ()  # the values of relay_for_token's `extra` expressions, in order


def relay_for_token(
    token: str, *, now: datetime, extra: dict[str, Expression] | None = None
) -> RelayIdentity | None:
    """The relay a token belongs to, or None; records when it was last used (coarsely,
    so a poll every few seconds is not a write every few seconds). `extra` expressions
    are read in the same statement (the feed reads its cursor so: one query per poll)."""
    if not isinstance(token, str) or len(token) != TOKEN_LENGTH or not token.startswith(PREFIX):
        return None
    rows = RelayApiToken.objects.filter(token_hash=token_hash(token), revoked_at__isnull=True)
    if extra:
        rows = rows.annotate(**extra)
    row = rows.values_list("id", "relay_id", "last_used_at", *(extra or {})).first()
    if row is None:
        return None
    token_id, relay_id, last_used, *values = row
    if last_used is None or now - last_used > LAST_USED_RESOLUTION:
        RelayApiToken.objects.filter(pk=token_id).update(last_used_at=now)
    return RelayIdentity(token_id, relay_id, tuple(values))
