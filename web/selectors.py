"""Reads of the students' pages that the booking selectors do not already answer."""

from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from booking import selectors as booking_selectors
from booking.models import Group, Pool, Window
from booking.services.groups import access_code_hash
from booking.services.guests import GUEST_PREFIX
from web.models import CalendarFeed
from web.tokens import feed_token, feed_token_hash, looks_like_feed_token

WINDOWS_SHOWN = 10


def pool_for_user(*, user: AbstractBaseUser, slug: str) -> Pool | None:
    """One of the pools the user may book (with its visible experiments), or None."""
    return next((p for p in booking_selectors.pool_list_for_user(user) if p.slug == slug), None)


def pool_windows_ahead(*, pool: Pool, now: datetime) -> QuerySet[Window]:
    """The pool's allowed and denied windows that have not ended yet, soonest first."""
    return Window.objects.filter(pool=pool, end__gt=now).order_by("start")[:WINDOWS_SHOWN]


def group_for_access_code(*, code: str, now: datetime) -> Group | None:
    """The group an access code would join, if the code still works (for the join page)."""
    if not code or not code.strip():
        return None
    group = Group.objects.filter(access_code_hash=access_code_hash(code)).first()
    if group is None:
        return None
    if group.access_code_expires_at is not None and group.access_code_expires_at <= now:
        return None
    if (
        group.access_code_max_uses is not None
        and group.access_code_uses >= group.access_code_max_uses
    ):
        return None
    return group


def calendar_feed_token_for_user(user: AbstractBaseUser) -> str | None:
    """The token of the user's feed address, if the user has asked for one."""
    feed = CalendarFeed.objects.filter(user=user.pk).first()
    if feed is None:
        return None
    token = feed_token(user_id=feed.user_id, salt=feed.salt)
    # After DJANGO_SECRET_KEY changed, the address can no longer be shown (the old one
    # keeps working): the page then offers a new one.
    return token if feed_token_hash(token) == feed.token_hash else None


def calendar_feed_user(token: str) -> AbstractBaseUser | None:
    """The active user whose feed address carries `token`, or None."""
    if not looks_like_feed_token(token):
        return None
    feed = (
        CalendarFeed.objects.filter(token_hash=feed_token_hash(token))
        .select_related("user")
        .first()
    )
    if feed is None or not feed.user.is_active:
        return None
    return feed.user


def bookings_for_page(*, user: AbstractBaseUser, now: datetime) -> tuple[list, list]:
    """The user's current and future bookings, and the past ones (latest first)."""
    upcoming = list(booking_selectors.booking_list_for_user(user=user, now=now))
    shown = {b.pk for b in upcoming}
    past = [
        b
        for b in booking_selectors.booking_list_for_user(user=user, now=now, include_past=True)
        if b.pk not in shown
    ]
    past.reverse()
    return upcoming, past


def user_is_guest(user: AbstractBaseUser) -> bool:
    return (
        isinstance(user, get_user_model())
        and user.get_username().startswith(GUEST_PREFIX)
        and not user.has_usable_password()
    )
