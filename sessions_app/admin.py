"""Sessions and signing keys in admin, read-only: what was issued and when, never a code,
a salt or a private key. Sessions end through the booking (cancel, out of service)."""

from django.contrib import admin

from booking.admin_permissions import read_only
from sessions_app.models import IssuedToken, Session, SigningKey


@read_only
class IssuedTokenInline(admin.TabularInline):
    model = IssuedToken
    extra = 0
    fields = ("jti", "kind", "stream", "relay", "scopes", "issued_at", "expires_at")
    ordering = ("-issued_at",)


@read_only
@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ("reference", "user", "experiment", "status", "created_at", "ended_at")
    list_filter = ("booking__status", "booking__experiment")
    list_select_related = ("booking", "booking__user", "booking__experiment")
    search_fields = ("booking__reference", "booking__user__username", "booking__user__last_name")
    date_hierarchy = "created_at"
    fields = ("id", "booking", "created_at", "ended_at")
    inlines = [IssuedTokenInline]

    @admin.display(description="reference", ordering="booking__reference")
    def reference(self, obj: Session) -> str:
        return obj.booking.reference

    @admin.display(description="user", ordering="booking__user__username")
    def user(self, obj: Session) -> str:
        return str(obj.booking.user)

    @admin.display(description="experiment", ordering="booking__experiment__slug")
    def experiment(self, obj: Session) -> str:
        return str(obj.booking.experiment)

    @admin.display(description="booking status", ordering="booking__status")
    def status(self, obj: Session) -> str:
        return obj.booking.get_status_display()


@read_only
@admin.register(SigningKey)
class SigningKeyAdmin(admin.ModelAdmin):
    """Keys are made and rotated with `manage.py rotate_signing_keys`."""

    list_display = ("kid", "algorithm", "created_at", "activated_at", "retired_at", "last_exp")
    list_filter = ("algorithm",)
    fields = (
        "kid",
        "algorithm",
        "public_jwk",
        "created_at",
        "activated_at",
        "retired_at",
        "last_exp",
    )
