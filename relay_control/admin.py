"""Relays in admin: each relay with its streams and API tokens, the deny list, and the push
outbox per relay. A token is shown once, when it is made; its hash never appears."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Max, Q
from django.http import HttpResponseRedirect
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html

from booking.admin_pages import FORM_PAGE, admin_url, lab_page
from booking.admin_permissions import LabModelAdmin, read_only
from booking.models import Relay, Stream
from relay_control.api_tokens import relay_token_create, relay_token_revoke
from relay_control.models import RelayApiToken, Revocation, RevocationDelivery

TOKEN_SHOWN = (
    "New API token for relay {relay}: {token} . It is shown only this once (only its hash "
    "is kept): configure the relay or its agent with it now."
)
TOKENS_REVOKED = "Revoked {count} token(s); relays using them are refused from now on."
ONE_RELAY = "Choose one relay to make a token for."


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        required=False,
        help_text="Where the token is used (e.g. the relay host), to recognise it later.",
    )


@read_only
class RelayStreamInline(admin.TabularInline):
    model = Stream
    extra = 0
    fields = ("experiment", "name", "scopes")
    verbose_name_plural = "streams on this relay"


@read_only
class RelayTokenInline(admin.TabularInline):
    model = RelayApiToken
    extra = 0
    fields = ("name", "prefix", "created_at", "last_used_at", "revoked_at")
    verbose_name_plural = "API tokens (revoke them in the token list)"


@admin.register(Relay)
class RelayAdmin(LabModelAdmin):
    list_display = (
        "slug",
        "access_url",
        "algorithm",
        "push_enabled",
        "stream_count",
        "live_tokens",
        "token_last_used",
        "pending_pushes",
    )
    search_fields = ("slug", "access_url")
    inlines = [RelayStreamInline, RelayTokenInline]
    actions = ["create_api_token"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                stream_total=Count("streams", distinct=True),
                live_token_total=Count(
                    "api_tokens", filter=Q(api_tokens__revoked_at__isnull=True), distinct=True
                ),
                token_used=Max("api_tokens__last_used_at"),
                pending_total=Count(
                    "deliveries",
                    filter=Q(deliveries__state=RevocationDelivery.State.PENDING),
                    distinct=True,
                ),
            )
        )

    @admin.display(description="streams", ordering="stream_total")
    def stream_count(self, obj: Relay) -> int:
        return obj.stream_total

    @admin.display(description="live tokens", ordering="live_token_total")
    def live_tokens(self, obj: Relay) -> int:
        return obj.live_token_total

    @admin.display(description="token last used", ordering="token_used")
    def token_last_used(self, obj: Relay):
        return obj.token_used or "never"

    @admin.display(description="pending pushes", ordering="pending_total")
    def pending_pushes(self, obj: Relay) -> str:
        if not obj.pending_total:
            return "0"
        url = admin_url(RevocationDelivery, "changelist")
        return format_html(
            '<a href="{}?relay__id__exact={}&state__exact=pending">{}</a>',
            url,
            obj.pk,
            obj.pending_total,
        )

    def has_token_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("relay_control.add_relayapitoken")

    @admin.action(description="Create an API token…", permissions=["token"])
    def create_api_token(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, ONE_RELAY, messages.WARNING)
            return None
        return HttpResponseRedirect(admin_url(Relay, "api_token", queryset.get().pk))

    def get_urls(self):
        return [
            path(
                "<path:object_id>/api-token/",
                self.admin_site.admin_view(self.api_token_view),
                name="booking_relay_api_token",
            ),
            *super().get_urls(),
        ]

    def api_token_view(self, request, object_id):
        if not self.has_token_permission(request):
            raise PermissionDenied
        relay = self._object_or_404(request, object_id)
        form = TokenForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            _, token = relay_token_create(
                relay=relay, now=timezone.now(), name=form.cleaned_data["name"], by=request.user
            )
            self.message_user(
                request, TOKEN_SHOWN.format(relay=relay, token=token), messages.SUCCESS
            )
            return HttpResponseRedirect(admin_url(Relay, "change", relay.pk))
        return lab_page(
            request,
            self,
            FORM_PAGE,
            f"New API token for {relay}",
            intro=(
                "The relay (or its relay agent) uses the token to read the revocation feed. "
                "It is shown once, on the next page; only its hash is kept."
            ),
            form=form,
            submit_label="Create the token",
            cancel_url=admin_url(Relay, "change", relay.pk),
        )


@admin.register(RelayApiToken)
class RelayApiTokenAdmin(admin.ModelAdmin):
    list_display = ("relay", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = ("relay", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "prefix", "relay__slug")
    fields = ("relay", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    # Made with the relay's "Create an API token" action; revoked, never edited or deleted.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_revoke_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("relay_control.change_relayapitoken")

    @admin.action(description="Revoke", permissions=["revoke"])
    def revoke(self, request, queryset):
        now = timezone.now()
        rows = list(queryset.filter(revoked_at__isnull=True))
        for row in rows:
            relay_token_revoke(row=row, now=now, by=request.user)
        self.message_user(request, TOKENS_REVOKED.format(count=len(rows)), messages.SUCCESS)


@read_only
class DeliveryInline(admin.TabularInline):
    model = RevocationDelivery
    extra = 0
    fields = ("relay", "state", "attempts", "next_attempt_at", "last_error", "delivered_at")


@read_only
@admin.register(Revocation)
class RevocationAdmin(admin.ModelAdmin):
    list_display = ("seq", "booking_id", "jti", "reason", "revoked_at", "exp")
    search_fields = ("booking_id", "jti", "reason")
    date_hierarchy = "revoked_at"
    fields = ("seq", "booking_id", "jti", "token_ids", "reason", "revoked_at", "exp")
    inlines = [DeliveryInline]


@read_only
@admin.register(RevocationDelivery)
class RevocationDeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "seq",
        "booking",
        "relay",
        "state",
        "attempts",
        "next_attempt_at",
        "last_error",
        "delivered_at",
    )
    list_filter = ("state", "relay")
    list_select_related = ("revocation", "relay")
    search_fields = ("revocation__booking_id", "relay__slug", "last_error")
    fields = (
        "revocation",
        "relay",
        "state",
        "attempts",
        "next_attempt_at",
        "last_error",
        "delivered_at",
    )

    @admin.display(description="seq", ordering="revocation__seq")
    def seq(self, obj: RevocationDelivery) -> int:
        return obj.revocation.seq

    @admin.display(description="booking")
    def booking(self, obj: RevocationDelivery) -> str:
        return str(obj.revocation.booking_id)
