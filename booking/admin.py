"""Lab administration: the catalogue, bookings, the audit log, users and their roles.

Admin is the outermost layer, like the API views: what crosses apps (cancelling with its
revocations, taking an experiment out of service, disabling a user) goes through one
action in workflows/, never floor by floor. Who may do what: booking.roles (the roles) and
booking.admin_permissions (object-level rules, audit of every change).
"""

import json

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group as Role
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html

from booking.admin_pages import (
    FORM_PAGE,
    AccessCodeForm,
    CancelForm,
    DurationField,
    ManifestPage,
    OutOfServiceForm,
    admin_url,
    ids_redirect,
    lab_page,
    manifest_export_response,
    selected_ids,
    usage_report_page,
)
from booking.admin_permissions import (
    POOL_GENERAL_FIELDS,
    POOL_MEMBERSHIP_FIELDS,
    POOL_POLICY_FIELDS,
    LabModelAdmin,
    audit_admin,
    editable_experiment_fields,
    editable_pool_fields,
    maintained_experiments,
    maintains,
    maintains_any,
    may_change_experiment,
    may_use_service_actions,
    may_view_all_experiments,
    read_only,
)
from booking.models import UI, AuditEntry, Booking, Experiment, Group, Pool, Stream, UISet, Window
from booking.models.bookings import ACTIVE_STATUSES
from booking.rules import format_duration
from booking.services import group_access_code_rotate
from workflows.actions import booking_staff_cancel_action, user_disable_action
from workflows.lab_actions import (
    experiment_back_in_service_action,
    experiment_out_of_service_action,
)

# What staff read.
REASON_REQUIRED = "Say why it is unavailable: students see this reason."
OUT_OF_SERVICE_DONE = (
    "{experiment} is out of service: {moved} booking(s) moved, {cancelled} cancelled, "
    "{revoked} running session(s) ended. Every student affected was told."
)
BACK_IN_SERVICE_DONE = "{experiment} is back in service."
ALREADY_IN_SERVICE = "{experiment} was already in service; nothing changed."
CANCEL_DONE = "Cancelled {count} booking(s); the students were told."
CANCEL_NOTHING = "{reference} is already over or cancelled; nothing to do."
ACCESS_CODE_SHOWN = (
    "New access code for {group}: {code} (join link: {link}). It is shown only this "
    "once and is not stored: copy it now."
)
NOTHING_SELECTED = "Select at least one item."
USERS_DISABLED = "Disabled {users} user(s); {bookings} booking(s) cancelled."
DISABLE_SELF = "You cannot disable your own account."


# --- experiments ---------------------------------------------------------------------------------


class ExperimentAdminForm(forms.ModelForm):
    class Meta:
        model = Experiment
        fields = (
            "slug",
            "title",
            "topic_stub",
            "description",
            "available",
            "unavailable_reason",
            "public",
            "maintainers",
        )

    def clean(self):
        data = super().clean()
        if "available" in data and "unavailable_reason" in self.fields:
            if data["available"]:
                data["unavailable_reason"] = ""
            elif not (data.get("unavailable_reason") or "").strip():
                self.add_error("unavailable_reason", REASON_REQUIRED)
        return data


class StreamInline(admin.TabularInline):
    model = Stream
    extra = 0
    fields = ("name", "relay", "scopes")


@admin.register(Experiment)
class ExperimentAdmin(LabModelAdmin):
    form = ExperimentAdminForm
    booked_by = "experiment"
    inlines = [StreamInline]
    list_display = ("slug", "title", "service", "public", "pool_list")
    list_filter = ("available", "public", "pools")
    search_fields = ("slug", "title")
    actions = ["out_of_service", "back_in_service", "delete_selected"]
    autocomplete_fields = ("maintainers",)
    FULL_FIELDSETS = (
        (None, {"fields": ("slug", "title", "topic_stub", "description")}),
        ("Service", {"fields": ("available", "unavailable_reason", "public")}),
        ("Maintainers", {"fields": ("maintainers",)}),
    )
    OWN_FIELDSETS = (
        (None, {"fields": ("slug", "title", "topic_stub", "description")}),
        ("Service", {"fields": ("available", "unavailable_reason", "public")}),
    )

    def get_queryset(self, request):
        qs = super().get_queryset(request).prefetch_related("pools")
        if may_view_all_experiments(request.user):
            return qs
        return qs.filter(pk__in=maintained_experiments(request.user).values("pk"))

    def has_module_permission(self, request):
        return super().has_module_permission(request) or maintains_any(request.user)

    def get_list_filter(self, request):
        if may_view_all_experiments(request.user):
            return self.list_filter
        return ("available", "public")  # the pool filter would list every pool

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) or maintains(request.user, obj)

    def has_change_permission(self, request, obj=None):
        return may_change_experiment(request.user, obj)

    def has_service_permission(self, request):
        return may_use_service_actions(request.user)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        experiment = self._object_or_404(request, object_id)
        extra = {"can_service": may_use_service_actions(request.user, experiment)}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def get_fieldsets(self, request, obj=None):
        if editable_experiment_fields(request.user) is None or may_view_all_experiments(
            request.user
        ):
            return self.FULL_FIELDSETS
        return self.OWN_FIELDSETS

    def get_readonly_fields(self, request, obj=None):
        user = request.user
        editable = editable_experiment_fields(user)
        names = [f for _, opts in self.get_fieldsets(request, obj) for f in opts["fields"]]
        readonly = set() if editable is None else {f for f in names if f not in editable}
        if not user.has_perm("auth.view_user"):
            readonly.add("maintainers")  # choosing people needs seeing them
        return [f for f in names if f in readonly]

    @admin.display(description="service")
    def service(self, obj: Experiment) -> str:
        if obj.available:
            return "in service"
        return f"out of service: {obj.unavailable_reason}" if obj.unavailable_reason else "out"

    @admin.display(description="pools")
    def pool_list(self, obj: Experiment) -> str:
        return ", ".join(p.slug for p in obj.pools.all())

    @admin.action(description="Take out of service…", permissions=["service"])
    def out_of_service(self, request, queryset):
        return ids_redirect(Experiment, "out_of_service", queryset)

    @admin.action(description="Put back in service…", permissions=["service"])
    def back_in_service(self, request, queryset):
        return ids_redirect(Experiment, "back_in_service", queryset)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "out-of-service/",
                wrap(self.out_of_service_view),
                name="booking_experiment_out_of_service",
            ),
            path(
                "back-in-service/",
                wrap(self.back_in_service_view),
                name="booking_experiment_back_in_service",
            ),
            path("manifest/", wrap(self.manifest_view), name="booking_experiment_manifest"),
            path(
                "manifest/export/",
                wrap(self.manifest_export_view),
                name="booking_experiment_manifest_export",
            ),
            *super().get_urls(),
        ]

    def _service_targets(self, request: HttpRequest) -> list[Experiment]:
        if not may_use_service_actions(request.user):
            raise PermissionDenied
        ids = selected_ids(request)
        try:
            experiments = list(self.get_queryset(request).filter(pk__in=ids))
        except (ValueError, ValidationError):
            raise Http404(NOTHING_SELECTED) from None
        if not ids or len(experiments) != len(set(ids)):
            raise Http404(NOTHING_SELECTED)
        if not all(may_use_service_actions(request.user, e) for e in experiments):
            raise PermissionDenied
        return experiments

    def out_of_service_view(self, request):
        experiments = self._service_targets(request)
        now = timezone.now()
        form = OutOfServiceForm(
            request.POST if request.method == "POST" else None,
            initial={"start": timezone.localtime(now)},
        )
        if form.is_valid():
            data = form.cleaned_data
            for experiment in experiments:
                result = experiment_out_of_service_action(
                    experiment=experiment,
                    reason=data["reason"],
                    start=data["start"],
                    end=data["end"],
                    by=request.user,
                    now=now,
                    move=data["move"],
                )
                self.message_user(
                    request,
                    OUT_OF_SERVICE_DONE.format(
                        experiment=experiment,
                        moved=result.moved,
                        cancelled=result.cancelled,
                        revoked=result.revoked,
                    ),
                    messages.SUCCESS,
                )
            return HttpResponseRedirect(admin_url(Experiment, "changelist"))
        held = dict(
            Booking.objects.filter(
                experiment__in=experiments, status__in=ACTIVE_STATUSES, end__gt=now
            )
            .values_list("experiment")
            .annotate(n=Count("pk"))
        )
        return lab_page(
            request,
            self,
            FORM_PAGE,
            "Take out of service",
            intro=(
                "Students see the reason. In the period, a running booking is cancelled at "
                "once (its session ends), and a future one is moved or cancelled; each "
                "student gets a message and an e-mail."
            ),
            objects=[
                f"{e.slug}: {held.get(e.pk, 0)} current or future booking(s)" for e in experiments
            ],
            form=form,
            submit_label="Take out of service",
            cancel_url=admin_url(Experiment, "changelist"),
        )

    def back_in_service_view(self, request):
        experiments = self._service_targets(request)
        if request.method == "POST":
            for experiment in experiments:
                done = experiment_back_in_service_action(
                    experiment=experiment, by=request.user, now=timezone.now()
                )
                text = BACK_IN_SERVICE_DONE if done else ALREADY_IN_SERVICE
                self.message_user(request, text.format(experiment=experiment), messages.SUCCESS)
            return HttpResponseRedirect(admin_url(Experiment, "changelist"))
        return lab_page(
            request,
            self,
            FORM_PAGE,
            "Put back in service",
            intro="These experiments become bookable again and their reason is cleared.",
            objects=[str(e) for e in experiments],
            form=forms.Form(),
            submit_label="Put back in service",
            cancel_url=admin_url(Experiment, "changelist"),
        )

    # -- the manifest --
    def manifest_view(self, request):
        return ManifestPage(self, request).response()

    def manifest_export_view(self, request):
        return manifest_export_response(request)


# --- pools ---------------------------------------------------------------------------------------

DURATION_FIELDS = (
    "min_duration",
    "max_duration",
    "book_ahead",
    "start_in_past",
    "quota_period",
    "quota_limit",
    "grace_period",
    "extend_step",
    "max_extension",
)


class PoolAdminForm(forms.ModelForm):
    min_duration = DurationField()
    max_duration = DurationField()
    book_ahead = DurationField()
    start_in_past = DurationField()
    quota_period = DurationField(required=False, help_text="Empty: no quota.")
    quota_limit = DurationField(required=False, help_text="Booked time allowed per period.")
    grace_period = DurationField()
    extend_step = DurationField(help_text="Whole minutes.")
    max_extension = DurationField(help_text="0s: no extension.")

    class Meta:
        model = Pool
        fields = (*POOL_GENERAL_FIELDS, *POOL_MEMBERSHIP_FIELDS, *POOL_POLICY_FIELDS)

    def clean(self):
        data = super().clean()
        lo, hi = data.get("min_duration"), data.get("max_duration")
        if lo is not None and hi is not None and lo > hi:
            self.add_error("max_duration", "The maximum must not be below the minimum.")
        step = data.get("extend_step")
        if step is not None and (step < 60 or step % 60):
            self.add_error("extend_step", "Use whole minutes (at least 1m).")
        if (data.get("quota_period") is None) != (data.get("quota_limit") is None):
            self.add_error("quota_limit", "Give both the quota period and its limit, or neither.")
        return data


class WindowInline(admin.TabularInline):
    model = Window
    extra = 0
    fields = ("kind", "start", "end")


def _shown_duration(name: str):
    @admin.display(description=name.replace("_", " "))
    def shown(self, obj: Pool) -> str:
        value = getattr(obj, name)
        return "–" if value is None else format_duration(value)

    return shown


@admin.register(Pool)
class PoolAdmin(LabModelAdmin):
    form = PoolAdminForm
    booked_by = "pool"
    inlines = [WindowInline]
    list_display = ("slug", "title", "experiment_list", "duration_range", "max_bookings")
    search_fields = ("slug", "title")
    filter_horizontal = ("experiments",)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("experiments")

    def _editable(self, request, obj) -> set[str]:
        if obj is not None and not self.has_change_permission(request, obj):
            return set()
        return editable_pool_fields(request.user)

    def get_fieldsets(self, request, obj=None):
        editable = self._editable(request, obj)

        def name(field: str) -> str:
            shown = field in DURATION_FIELDS and field not in editable
            return f"{field}_shown" if shown else field

        return (
            (None, {"fields": POOL_GENERAL_FIELDS}),
            ("Experiments", {"fields": POOL_MEMBERSHIP_FIELDS}),
            (
                "Policy",
                {
                    "fields": [name(f) for f in POOL_POLICY_FIELDS],
                    "description": "Durations: 30s, 5m, 2h, 7d. Changes apply to new "
                    "bookings; existing bookings stay as they are.",
                },
            ),
        )

    def get_readonly_fields(self, request, obj=None):
        editable = self._editable(request, obj)
        names = [f for _, opts in self.get_fieldsets(request, obj) for f in opts["fields"]]
        # The raw names too, so that the form drops its declared duration fields.
        hidden = [f for f in DURATION_FIELDS if f not in editable]
        return [*(f for f in names if f not in editable), *hidden]

    def get_inlines(self, request, obj):
        return self.inlines if "min_duration" in self._editable(request, obj) else []

    @admin.display(description="experiments")
    def experiment_list(self, obj: Pool) -> str:
        return ", ".join(e.slug for e in obj.experiments.all())

    @admin.display(description="duration")
    def duration_range(self, obj: Pool) -> str:
        return f"{format_duration(obj.min_duration)}–{format_duration(obj.max_duration)}"


for _name in DURATION_FIELDS:
    setattr(PoolAdmin, f"{_name}_shown", _shown_duration(_name))


# --- groups (cohorts) and their access codes ------------------------------------------------------


@admin.register(Group)
class GroupAdmin(LabModelAdmin):
    list_display = ("slug", "title", "member_count", "code_uses", "code_expires", "code_link")
    search_fields = ("slug", "title")
    filter_horizontal = ("pools",)
    autocomplete_fields = ("members",)
    readonly_fields = ("access_code",)
    fieldsets = (
        (None, {"fields": ("slug", "title", "pools", "ui_set")}),
        ("Members", {"fields": ("members",)}),
        ("Access code", {"fields": ("access_code",)}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_total=Count("members", distinct=True))

    @admin.display(description="members", ordering="member_total")
    def member_count(self, obj: Group) -> int:
        return obj.member_total

    @admin.display(description="code uses / limit")
    def code_uses(self, obj: Group) -> str:
        if not obj.access_code_hash:
            return "no code"
        limit = obj.access_code_max_uses
        return f"{obj.access_code_uses} / {'–' if limit is None else limit}"

    @admin.display(description="code expires", ordering="access_code_expires_at")
    def code_expires(self, obj: Group) -> str:
        if not obj.access_code_hash:
            return "–"
        if obj.access_code_expires_at is None:
            return "never"
        expired = " (expired)" if obj.access_code_expires_at <= timezone.now() else ""
        return f"{timezone.localtime(obj.access_code_expires_at):%Y-%m-%d %H:%M}{expired}"

    @admin.display(description="")
    def code_link(self, obj: Group) -> str:
        label = "Rotate code" if obj.access_code_hash else "Generate code"
        return format_html('<a href="{}">{}</a>', admin_url(Group, "access_code", obj.pk), label)

    @admin.display(description="access code")
    def access_code(self, obj: Group) -> str:
        if obj.pk is None:
            return "Generated after the group is saved."
        state = "Only its hash is kept; " if obj.access_code_hash else "No code yet; "
        uses = f"{self.code_uses(obj)}, expires: {self.code_expires(obj)}. "
        return format_html(
            '{}{}<a class="button" href="{}">{}</a>',
            state,
            uses if obj.access_code_hash else "",
            admin_url(Group, "access_code", obj.pk),
            "Rotate access code…" if obj.access_code_hash else "Generate access code…",
        )

    def get_urls(self):
        return [
            path(
                "<path:object_id>/access-code/",
                self.admin_site.admin_view(self.access_code_view),
                name="booking_group_access_code",
            ),
            *super().get_urls(),
        ]

    def access_code_view(self, request, object_id):
        group = self._object_or_404(request, object_id)
        if not self.has_change_permission(request, group):
            raise PermissionDenied
        form = AccessCodeForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            code = group_access_code_rotate(
                group=group,
                now=timezone.now(),
                by=request.user,
                expires_at=form.cleaned_data["expires_at"],
                max_uses=form.cleaned_data["max_uses"],
            )
            link = f"{settings.PLATFORM_URL}/join/{code}"
            self.message_user(
                request,
                ACCESS_CODE_SHOWN.format(group=group, code=code, link=link),
                messages.SUCCESS,
            )
            return HttpResponseRedirect(admin_url(Group, "change", group.pk))
        return lab_page(
            request,
            self,
            FORM_PAGE,
            f"New access code for {group}",
            intro=(
                "The current code stops working at once. The new code and its join link are "
                "shown once, on the next page; only a hash is kept."
            ),
            form=form,
            submit_label="Generate the new code",
            cancel_url=admin_url(Group, "change", group.pk),
        )


# --- UIs ------------------------------------------------------------------------------------------


@admin.register(UI)
class UIAdmin(LabModelAdmin):
    list_display = ("slug", "title", "url")
    search_fields = ("slug", "title")


@admin.register(UISet)
class UISetAdmin(LabModelAdmin):
    list_display = ("slug", "ui_list")
    filter_horizontal = ("uis",)

    @admin.display(description="UIs")
    def ui_list(self, obj: UISet) -> str:
        return ", ".join(u.slug for u in obj.uis.all())


# --- bookings and the usage report ----------------------------------------------------------------


@admin.register(Booking)
class BookingAdmin(LabModelAdmin):
    list_display = ("reference", "user", "pool", "experiment", "start", "end", "status")
    list_filter = ("status", "pool", "experiment")
    list_select_related = ("user", "pool", "experiment")
    search_fields = ("reference", "user__username", "user__last_name", "user__email")
    date_hierarchy = "start"
    actions = ["cancel_with_reason"]
    fields = (
        "reference",
        "user",
        "pool",
        "experiment",
        "start",
        "end",
        "booked_end",
        "status",
        "created_at",
        "started_at",
        "cancelled_at",
        "cancelled_by",
        "cancel_reason",
    )

    # Bookings are made and changed by the booking rules, and never deleted.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_cancel_permission(self, request, obj=None):
        return request.user.has_perm("booking.change_booking")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {"can_cancel": self.has_cancel_permission(request)}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    @admin.action(description="Cancel with reason…", permissions=["cancel"])
    def cancel_with_reason(self, request, queryset):
        return ids_redirect(Booking, "cancel", queryset)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("cancel/", wrap(self.cancel_view), name="booking_booking_cancel"),
            path("report/", wrap(self.report_view), name="booking_booking_report"),
            *super().get_urls(),
        ]

    def cancel_view(self, request):
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        ids = selected_ids(request)
        try:
            bookings = list(self.get_queryset(request).filter(pk__in=ids))
        except (ValueError, ValidationError):
            raise Http404(NOTHING_SELECTED) from None
        if not bookings:
            raise Http404(NOTHING_SELECTED)
        now = timezone.now()
        form = CancelForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            count = 0
            for booking in bookings:
                if booking.status not in ACTIVE_STATUSES or booking.end <= now:
                    self.message_user(
                        request,
                        CANCEL_NOTHING.format(reference=booking.reference),
                        messages.WARNING,
                    )
                    continue
                booking_staff_cancel_action(
                    booking=booking, by=request.user, reason=form.cleaned_data["reason"], now=now
                )
                count += 1
            if count:
                self.message_user(request, CANCEL_DONE.format(count=count), messages.SUCCESS)
            return HttpResponseRedirect(admin_url(Booking, "changelist"))
        return lab_page(
            request,
            self,
            FORM_PAGE,
            "Cancel bookings",
            intro="A running booking ends at once; its session and tokens are revoked.",
            objects=[f"{b.reference}: {b.user}, {b.experiment}, {b.status}" for b in bookings],
            form=form,
            submit_label="Cancel these bookings",
            cancel_url=admin_url(Booking, "changelist"),
        )

    def report_view(self, request):
        return usage_report_page(self, request)


# --- the audit log --------------------------------------------------------------------------------


class ActorFilter(admin.SimpleListFilter):
    title = "actor"
    parameter_name = "actor"

    def lookups(self, request, model_admin):
        actors = (
            AuditEntry.objects.exclude(actor_label="")
            .order_by("actor_label")
            .values_list("actor_label", flat=True)
            .distinct()
        )
        return [(a, a) for a in actors]

    def queryset(self, request, queryset):
        return queryset.filter(actor_label=self.value()) if self.value() else queryset


def _json_block(value) -> str:
    if value in (None, {}, []):
        return "–"
    return format_html("<pre class='lab-json'>{}</pre>", json.dumps(value, indent=2))


@read_only
@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("at", "actor_label", "action", "object_type", "object_id", "object_repr")
    list_filter = ("action", "object_type", ActorFilter, "at")
    search_fields = ("object_repr", "object_id", "actor_label", "action")
    date_hierarchy = "at"
    fields = (
        "at",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "before_shown",
        "after_shown",
        "detail_shown",
    )

    @admin.display(description="before")
    def before_shown(self, obj: AuditEntry) -> str:
        return _json_block(obj.before)

    @admin.display(description="after")
    def after_shown(self, obj: AuditEntry) -> str:
        return _json_block(obj.after)

    @admin.display(description="detail")
    def detail_shown(self, obj: AuditEntry) -> str:
        return _json_block(obj.detail)


# --- users and roles ------------------------------------------------------------------------------

admin.site.unregister(User)
admin.site.unregister(Role)


@admin.register(User)
class LabUserAdmin(LabModelAdmin, DjangoUserAdmin):
    """Role changes (groups), permissions and is_active are audited like any change; a user
    switched off here, or with the action, is disabled through user_disable_action."""

    booked_by = "user"
    list_display = (
        "username",
        "email",
        "first_name",
        "last_name",
        "is_staff",
        "is_active",
        "roles",
    )
    actions = ["disable_users"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description="roles")
    def roles(self, obj: User) -> str:
        return ", ".join(g.name for g in obj.groups.all())

    def _guards_superuser(self, request, obj) -> bool:
        return obj is not None and obj.is_superuser and not request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and not self._guards_superuser(
            request, obj
        )

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not self._guards_superuser(
            request, obj
        )

    def get_readonly_fields(self, request, obj=None):
        readonly = [*super().get_readonly_fields(request, obj), "last_login", "date_joined"]
        if not request.user.is_superuser:
            readonly.append("is_superuser")
        return readonly

    def save_model(self, request, obj, form, change):
        was_active = change and User.objects.filter(pk=obj.pk, is_active=True).exists()
        super().save_model(request, obj, form, change)
        if was_active and not obj.is_active:
            user_disable_action(user=obj, by=request.user, now=timezone.now())

    def user_change_password(self, request, id, form_url=""):
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:
            user = self.get_object(request, unquote(id))
            audit_admin(request, "admin.password_change", user, None, None)
        return response

    @admin.action(description="Disable (cancel their bookings, end their sessions)")
    def disable_users(self, request, queryset):
        users = bookings = 0
        for user in queryset.filter(is_active=True):
            if user.pk == request.user.pk:
                self.message_user(request, DISABLE_SELF, messages.ERROR)
                continue
            if not self.has_change_permission(request, user):
                raise PermissionDenied
            bookings += user_disable_action(user=user, by=request.user, now=timezone.now())
            audit_admin(request, "user.disable", user, {"is_active": True}, {"is_active": False})
            users += 1
        self.message_user(
            request, USERS_DISABLED.format(users=users, bookings=bookings), messages.SUCCESS
        )

    disable_users.allowed_permissions = ("change",)


@admin.register(Role)
class RoleAdmin(LabModelAdmin, DjangoGroupAdmin):
    list_display = ("name", "member_count")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_total=Count("user", distinct=True))

    @admin.display(description="members", ordering="member_total")
    def member_count(self, obj: Role) -> int:
        return obj.member_total
