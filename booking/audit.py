"""Writing audit entries. Callers pass plain values; never a token or a secret."""

from datetime import datetime
from typing import Any

from django.db import models

from booking.models import AuditEntry


def audit_record(
    *,
    at: datetime,
    actor: Any | None,
    action: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    before: dict | None = None,
    after: dict | None = None,
    detail: dict | None = None,
    actor_label: str = "",
) -> AuditEntry:
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
    user = actor if getattr(actor, "is_authenticated", False) else None
    return AuditEntry.objects.create(
        at=at,
        actor=user,
        actor_label=actor_label or (user.get_username() if user else ""),
        action=action,
        object_type=object_type,
        object_id=object_id,
        object_repr=str(obj)[:200] if obj is not None else "",
        before=before,
        after=after,
        detail=detail or {},
    )
