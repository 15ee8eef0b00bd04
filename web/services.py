"""Writes of the students' pages: the private calendar feed address."""

import secrets
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from booking.audit import audit_record
from web.models import CalendarFeed
from web.tokens import feed_token, feed_token_hash


def calendar_feed_rotate(*, user: AbstractBaseUser, now: datetime) -> str:
    """Give the user a (new) feed address; any previous one stops working. Returns the token."""
    with transaction.atomic():
        feed = CalendarFeed.objects.select_for_update().filter(user=user.pk).first()
        created = feed is None
        if created:
            feed = CalendarFeed(user_id=user.pk)
        feed.salt = secrets.token_hex(16)
        feed.created_at = now
        token = feed_token(user_id=user.pk, salt=feed.salt)
        feed.token_hash = feed_token_hash(token)
        feed.save()
        audit_record(
            at=now,
            actor=user,
            action="calendar_feed.create" if created else "calendar_feed.rotate",
            obj=feed,
        )
    return token
