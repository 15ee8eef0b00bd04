"""Group access codes: made here, shown once, kept only as a hash."""

import hashlib
import secrets
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F

from booking.audit import audit_record
from booking.errors import MESSAGES, ApiError
from booking.models import Group


def access_code_hash(code: str) -> str:
    # The code has ~96 bits of entropy, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(code.strip().encode()).hexdigest()


def new_access_code() -> str:
    return secrets.token_urlsafe(12)


def group_access_code_rotate(
    *,
    group: Group,
    now: datetime,
    by: AbstractBaseUser | None = None,
    code: str | None = None,
    expires_at: datetime | None = None,
    max_uses: int | None = None,
) -> str:
    """Give the group a new access code (the old one stops working); returns it, once."""
    code = code or new_access_code()
    group.access_code_hash = access_code_hash(code)
    group.access_code_expires_at = expires_at
    group.access_code_max_uses = max_uses
    group.access_code_uses = 0
    group.save(
        update_fields=[
            "access_code_hash",
            "access_code_expires_at",
            "access_code_max_uses",
            "access_code_uses",
        ]
    )
    audit_record(at=now, actor=by, action="group.access_code_rotate", obj=group)
    return code


def group_join(*, user: AbstractBaseUser, code: str, now: datetime) -> Group:
    if not code or not code.strip():
        raise ApiError("not_found", MESSAGES["bad_access_code"], 404)
    with transaction.atomic():
        group = (
            Group.objects.select_for_update()
            .filter(access_code_hash=access_code_hash(code))
            .first()
        )
        if group is None or (
            group.access_code_expires_at is not None and group.access_code_expires_at <= now
        ):
            raise ApiError("not_found", MESSAGES["bad_access_code"], 404)
        if group.members.filter(pk=user.pk).exists():
            return group
        if (
            group.access_code_max_uses is not None
            and group.access_code_uses >= group.access_code_max_uses
        ):
            raise ApiError("not_found", MESSAGES["bad_access_code"], 404)
        group.members.add(user)
        Group.objects.filter(pk=group.pk).update(access_code_uses=F("access_code_uses") + 1)
        audit_record(at=now, actor=user, action="group.join", obj=group)
        return group
