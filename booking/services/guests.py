"""Guests: people who book with a group's access code and no account of their own.

A guest is an ordinary Django user with an unusable password: signed in for the browser
session that created it, and afterwards able to find a booking by its reference and last
name. Guest usernames start with "guest-", so staff can tell them apart in admin.
"""

import secrets
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from booking.audit import audit_record
from booking.errors import ApiError
from booking.models import Group
from booking.services.groups import group_join

GUEST_PREFIX = "guest-"
NAME_MAX = 150
EMAIL_MAX = 254
SUFFIX_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
SUFFIX_LENGTH = 6
USERNAME_ATTEMPTS = 8

GUEST_NAME_REQUIRED = "Give your first name and your last name."
GUEST_NAME_TOO_LONG = f"A name may have at most {NAME_MAX} characters."
GUEST_EMAIL_INVALID = "Give a valid e-mail address: your booking confirmation goes there."


def _clean_name(value: str) -> str:
    name = " ".join((value or "").split())
    if not name:
        raise ApiError("invalid", GUEST_NAME_REQUIRED, 400)
    if len(name) > NAME_MAX:
        raise ApiError("invalid", GUEST_NAME_TOO_LONG, 400)
    return name


def _clean_email(value: str) -> str:
    email = (value or "").strip()
    try:
        if len(email) > EMAIL_MAX:
            raise ValidationError("too long")
        validate_email(email)
    except ValidationError:
        raise ApiError("invalid", GUEST_EMAIL_INVALID, 400) from None
    return get_user_model().objects.normalize_email(email)


def guest_username(first_name: str, last_name: str) -> str:
    """guest-<ascii name>-<random>: readable in admin, never taken from raw input as is."""
    stem = slugify(f"{first_name} {last_name}")[:40].strip("-") or "user"
    suffix = "".join(secrets.choice(SUFFIX_ALPHABET) for _ in range(SUFFIX_LENGTH))
    return f"{GUEST_PREFIX}{stem}-{suffix}"


def guest_create(*, first_name: str, last_name: str, email: str, now: datetime) -> AbstractBaseUser:
    """A new guest user (unusable password); the caller signs it in."""
    first, last, address = _clean_name(first_name), _clean_name(last_name), _clean_email(email)
    User = get_user_model()
    with transaction.atomic():
        for _ in range(USERNAME_ATTEMPTS):
            user = User(
                username=guest_username(first, last),
                first_name=first,
                last_name=last,
                email=address,
                date_joined=now,
            )
            user.set_unusable_password()
            try:
                with transaction.atomic():
                    user.save(force_insert=True)
                break
            except IntegrityError:
                continue  # the random suffix collided: draw another
        else:
            raise ApiError("server_busy", "Could not create a guest; try again.", 503)
        audit_record(at=now, actor=None, action="user.guest_create", obj=user)
    return user


def guest_join(
    *, code: str, first_name: str, last_name: str, email: str, now: datetime
) -> tuple[AbstractBaseUser, Group]:
    """Create a guest and join the group of `code`, all or nothing: a bad code leaves no user."""
    with transaction.atomic():
        user = guest_create(first_name=first_name, last_name=last_name, email=email, now=now)
        group = group_join(user=user, code=code, now=now)
    return user, group
