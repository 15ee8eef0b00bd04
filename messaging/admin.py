"""Staff messages in admin: the add form sends (through message_send, which records and
delivers it); a message is read-only afterwards. Survey answers are read-only too."""

from django import forms
from django.contrib import admin
from django.utils import timezone

from booking.admin_permissions import read_only
from messaging.models import Message, SurveyResponse
from messaging.services import message_send

T = Message.Target
# The object each target needs; "everyone" needs none.
TARGET_FIELD = {T.SESSION: "session", T.USER: "user", T.POOL: "pool", T.EXPERIMENT: "experiment"}
CHOOSE = "Choose the {what} to send to."


class MessageForm(forms.ModelForm):
    class Meta:
        model = Message
        fields = ("target", "session", "user", "pool", "experiment", "level", "text")
        widgets = {"text": forms.Textarea(attrs={"rows": 4, "cols": 80})}

    def clean(self):
        data = super().clean()
        needed = TARGET_FIELD.get(data.get("target"))
        if needed and not data.get(needed):
            self.add_error(needed, CHOOSE.format(what=needed))
        for name in TARGET_FIELD.values():
            if name != needed:
                data[name] = None
        return data


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    form = MessageForm
    list_display = (
        "created_at",
        "target",
        "recipient",
        "level",
        "short_text",
        "sender",
        "recipients",
    )
    list_filter = ("target", "level", "created_at")
    list_select_related = ("session__booking", "user", "pool", "experiment", "sender")
    search_fields = ("text",)
    date_hierarchy = "created_at"
    autocomplete_fields = ("session", "user", "pool", "experiment")
    add_fieldsets = (
        ("To", {"fields": ("target", "session", "user", "pool", "experiment")}),
        ("Message", {"fields": ("level", "text")}),
    )
    view_fields = (
        "created_at",
        "sender",
        "target",
        "session",
        "user",
        "pool",
        "experiment",
        "level",
        "text",
        "recipients",
    )

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return self.add_fieldsets
        return ((None, {"fields": self.view_fields}),)

    # Sent messages stay as they were sent.
    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        message = message_send(
            target=data["target"],
            text=data["text"],
            level=data["level"],
            sender=request.user,
            session=data.get("session"),
            user=data.get("user"),
            pool=data.get("pool"),
            experiment=data.get("experiment"),
            now=timezone.now(),
        )
        obj.pk, obj.created_at, obj.recipients = message.pk, message.created_at, message.recipients
        obj.sender = message.sender

    @admin.display(description="to")
    def recipient(self, obj: Message) -> str:
        field = TARGET_FIELD.get(obj.target)
        return str(getattr(obj, field) or "(gone)") if field else "everyone"

    @admin.display(description="text")
    def short_text(self, obj: Message) -> str:
        return obj.text if len(obj.text) <= 60 else obj.text[:59] + "…"


@read_only
@admin.register(SurveyResponse)
class SurveyResponseAdmin(admin.ModelAdmin):
    list_display = ("submitted_at", "session")
    date_hierarchy = "submitted_at"
    fields = ("session", "submitted_at", "answers")
