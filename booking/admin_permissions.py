"""Who may do what in admin, object by object, and the base every lab admin class rests on.

Model permissions come from the roles (booking.roles). On top of them:

- a per-experiment maintainer (a staff user in Experiment.maintainers) may see and change
  only their own experiments, and only the fields in OWN_EXPERIMENT_FIELDS;
- a pool's fields are split: membership (which experiments), policy (durations, limits,
  windows) and the rest, each with its own permission;
- nothing with current or future bookings is deleted, by anyone;
- every change made in admin is written to the audit log with a before/after snapshot.
"""

import json
from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

from booking.audit import audit_record
from booking.models import Booking, Experiment
from booking.models.bookings import ACTIVE_STATUSES

OWN_EXPERIMENT_FIELDS = ("description", "public", "available", "unavailable_reason")
POOL_GENERAL_FIELDS = ("slug", "title", "description", "ui_set")
POOL_MEMBERSHIP_FIELDS = ("experiments",)
POOL_POLICY_FIELDS = (
    "min_duration",
    "max_duration",
    "book_ahead",
    "start_in_past",
    "max_bookings",
    "quota_period",
    "quota_limit",
    "grace_period",
    "extend_step",
    "max_extension",
)

# Never copied into the audit log.
SECRET_FIELDS = frozenset(
    {"password", "access_code_hash", "token_hash", "code_hash", "salt", "private_encrypted"}
)

DELETE_BOOKED = (
    "{object} has current or future bookings, so it cannot be deleted. Cancel or move "
    "those bookings first (or take the experiment out of service)."
)
DELETE_BOOKED_SHORT = "{object}: has current or future bookings"


# --- role and object-level checks ------------------------------------------------------------


def maintained_experiments(user: Any) -> QuerySet[Experiment]:
    if not (user.is_active and user.is_staff):
        return Experiment.objects.none()
    return Experiment.objects.filter(maintainers=user.pk)


def maintains_any(user: Any) -> bool:
    return maintained_experiments(user).exists()


def maintains(user: Any, experiment: Experiment | None) -> bool:
    if experiment is None:
        return maintains_any(user)
    return maintained_experiments(user).filter(pk=experiment.pk).exists()


def may_view_all_experiments(user: Any) -> bool:
    return user.has_perm("booking.view_experiment") or user.has_perm("booking.change_experiment")


def may_change_experiment(user: Any, experiment: Experiment | None = None) -> bool:
    return user.has_perm("booking.change_experiment") or maintains(user, experiment)


def editable_experiment_fields(user: Any) -> tuple[str, ...] | None:
    """None: every field (model permission); otherwise the own-experiment fields."""
    return None if user.has_perm("booking.change_experiment") else OWN_EXPERIMENT_FIELDS


def may_use_service_actions(user: Any, experiment: Experiment | None = None) -> bool:
    """Taking an experiment out of service, or back: experiment maintainers (the role),
    lab managers, and the experiment's own maintainers."""
    return user.has_perm("booking.change_experiment_service") or maintains(user, experiment)


def editable_pool_fields(user: Any) -> set[str]:
    fields: set[str] = set()
    if user.has_perm("booking.add_pool"):
        fields |= set(POOL_GENERAL_FIELDS)
    if user.has_perm("booking.change_pool_membership"):
        fields |= set(POOL_MEMBERSHIP_FIELDS)
    if user.has_perm("booking.change_pool_policy"):
        fields |= set(POOL_POLICY_FIELDS)
    return fields


def current_or_future_bookings(field: str, objs: list[models.Model], now: datetime) -> set:
    """The pks among `objs` that current or future bookings use through `field`."""
    return set(
        Booking.objects.filter(
            **{f"{field}__in": [o.pk for o in objs]}, status__in=ACTIVE_STATUSES, end__gt=now
        ).values_list(field, flat=True)
    )


# --- audit snapshots -------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def snapshot(obj: models.Model) -> dict[str, Any]:
    """The object's concrete fields (foreign keys as ids) and many-to-many members (as text),
    without secrets."""
    data: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        if field.name in SECRET_FIELDS or isinstance(field, models.BinaryField):
            continue
        data[field.attname] = _plain(getattr(obj, field.attname))
    if obj.pk is not None:
        for field in obj._meta.many_to_many:
            data[field.name] = sorted(str(o) for o in getattr(obj, field.name).all())
    return data


def changed(before: dict, after: dict) -> tuple[dict, dict]:
    keys = [k for k in {**before, **after} if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}


def audit_admin(
    request: HttpRequest,
    action: str,
    obj: models.Model,
    before: dict | None,
    after: dict | None,
    **detail: Any,
) -> None:
    if before is not None and after is not None:
        before, after = changed(before, after)
        if not before and not after:
            return  # saved without a change
    audit_record(
        at=timezone.now(),
        actor=request.user,
        action=action,
        obj=obj,
        before=before,
        after=after,
        detail={"via": "admin", **detail},
    )


class LabModelAdmin(admin.ModelAdmin):
    """Audits every add, change and delete (inlines too); answers 404 for an object the
    user may not see; refuses to delete what current or future bookings use.

    `booked_by` names the Booking field that points at this model (if bookings do)."""

    booked_by: str | None = None

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if isinstance(db_field, models.URLField):
            kwargs.setdefault("assume_scheme", "https")
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    # -- audit --
    def save_model(self, request, obj, form, change):
        before = snapshot(type(obj)._default_manager.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)
        request._lab_audit = (obj, before)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        obj, before = getattr(request, "_lab_audit", (form.instance, None))
        obj = type(obj)._default_manager.get(pk=obj.pk)
        action = "admin.change" if change else "admin.add"
        audit_admin(request, action, obj, before if change else None, snapshot(obj))

    def save_formset(self, request, form, formset, change):
        model = formset.model
        deleted = {f.instance.pk for f in formset.deleted_forms if f.instance.pk}
        existing = [f.instance.pk for f in formset.initial_forms if f.instance.pk]
        before = {o.pk: snapshot(o) for o in model._default_manager.filter(pk__in=existing)}
        super().save_formset(request, form, formset, change)
        parent = f"{form.instance._meta.label_lower}:{form.instance.pk}"
        for obj in formset.new_objects:
            audit_admin(request, "admin.add", obj, None, snapshot(obj), parent=parent)
        for obj, _ in formset.changed_objects:
            audit_admin(
                request, "admin.change", obj, before.get(obj.pk), snapshot(obj), parent=parent
            )
        for pk in deleted:
            audit_record(
                at=timezone.now(),
                actor=request.user,
                action="admin.delete",
                object_type=model._meta.label_lower,
                object_id=str(pk),
                before=before.get(pk),
                detail={"via": "admin", "parent": parent},
            )

    def delete_model(self, request, obj):
        before = snapshot(obj)
        pk = obj.pk
        super().delete_model(request, obj)
        obj.pk = pk
        audit_admin(request, "admin.delete", obj, before, None)

    def delete_queryset(self, request, queryset):
        gone = [(obj, snapshot(obj)) for obj in queryset]
        super().delete_queryset(request, queryset)
        for obj, before in gone:
            audit_admin(request, "admin.delete", obj, before, None)

    # -- objects outside the user's queryset are not found --
    def _object_or_404(self, request: HttpRequest, object_id: str) -> models.Model:
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(f"No {self.opts.verbose_name} with that id, or not yours to see.")
        return obj

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self._object_or_404(request, object_id)
        return super().change_view(request, object_id, form_url, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        self._object_or_404(request, object_id)
        return super().history_view(request, object_id, extra_context)

    # -- deleting what bookings still need --
    def booked_pks(self, objs: list[models.Model]) -> set:
        if self.booked_by is None or not objs:
            return set()
        return current_or_future_bookings(self.booked_by, objs, timezone.now())

    def delete_view(self, request, object_id, extra_context=None):
        obj = self._object_or_404(request, object_id)
        if self.has_delete_permission(request, obj) and self.booked_pks([obj]):
            self.message_user(request, DELETE_BOOKED.format(object=obj), messages.ERROR)
            info = (self.opts.app_label, self.opts.model_name)
            return HttpResponseRedirect(reverse("admin:{}_{}_change".format(*info), args=[obj.pk]))
        return super().delete_view(request, object_id, extra_context)

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        booked = self.booked_pks(list(objs))
        protected = [
            *(DELETE_BOOKED_SHORT.format(object=o) for o in objs if o.pk in booked),
            *protected,
        ]
        if protected:
            # Bookings are never deleted in admin, so they would also show up as "permission
            # needed"; what blocks the deletion is that they exist: show that instead.
            perms_needed = set()
        return deleted, counts, perms_needed, protected


def read_only(admin_class: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    """A class decorator: nobody adds, changes or deletes (superusers included)."""

    def no(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    admin_class.has_add_permission = no
    admin_class.has_change_permission = no
    admin_class.has_delete_permission = no
    if admin_class.fields:
        # Shown, never edited: a form field for a non-editable column would not even build.
        admin_class.readonly_fields = tuple(admin_class.fields)
    return admin_class
