"""Admin pages of our own: the forms behind the lab actions, the manifest upload, the usage
report. Each page checks its permission, calls one service or selector, and renders."""

import csv
import hashlib
from datetime import date, datetime, time, timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from booking.management.commands.export_manifest import HEADER as MANIFEST_HEADER
from booking.manifest import (
    Manifest,
    ManifestError,
    change_lines,
    load_manifest,
    manifest_apply,
    manifest_dump,
    manifest_export,
    manifest_plan,
)
from booking.models import Booking, Experiment
from booking.reports import UsageRow, usage_csv_rows, usage_report
from booking.rules import format_duration, parse_duration

END_BEFORE_START = "The end must be after the start."
REASON_NEEDED = "Give a reason: the students affected see it."
MANIFEST_NO_CHANGES = "The manifest matches the catalogue: nothing to change."
MANIFEST_APPLIED = "Manifest applied: {count} change(s)."
MANIFEST_CHANGED_SINCE = (
    "The manifest or the catalogue changed since the dry run, so nothing was applied. "
    "Review the diff below and apply again."
)
MANIFEST_NO_INPUT = "Choose a manifest file or paste its text."
MANIFEST_NOT_UTF8 = "The file is not UTF-8 text."

DATETIME_INPUT = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
DATE_INPUT = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
FORM_PAGE = "admin/lab/form_page.html"


def lab_page(
    request: HttpRequest, model_admin: admin.ModelAdmin, template: str, title: str, **context
) -> TemplateResponse:
    """A page of our own inside admin (header, breadcrumbs, messages)."""
    return TemplateResponse(
        request,
        template,
        {
            **model_admin.admin_site.each_context(request),
            "opts": model_admin.opts,
            "title": title,
            **context,
        },
    )


def admin_url(model: type, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def selected_ids(request: HttpRequest) -> list[str]:
    raw = request.POST.get("ids") or request.GET.get("ids") or ""
    return [part for part in raw.split(",") if part]


def ids_redirect(model: type, view: str, queryset: QuerySet) -> HttpResponseRedirect:
    """From an admin action to its confirmation page, with the selection in the URL."""
    ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True))
    return HttpResponseRedirect(f"{admin_url(model, view)}?ids={ids}")


# --- forms ---------------------------------------------------------------------------------------


class OutOfServiceForm(forms.Form):
    reason = forms.CharField(
        max_length=300,
        error_messages={"required": REASON_NEEDED},
        help_text="Shown to students next to the experiment, and in the message they get.",
        widget=forms.TextInput(attrs={"size": 60}),
    )
    start = forms.DateTimeField(widget=DATETIME_INPUT, help_text="From (default: now).")
    end = forms.DateTimeField(
        required=False, widget=DATETIME_INPUT, help_text="Until; leave empty for open-ended."
    )
    move = forms.BooleanField(
        required=False,
        initial=True,
        label="Move future bookings",
        help_text="To a free experiment of the same pool; cancelled when none is free.",
    )

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["end"] <= data["start"]:
            self.add_error("end", END_BEFORE_START)
        return data


class CancelForm(forms.Form):
    reason = forms.CharField(
        max_length=64,
        error_messages={"required": REASON_NEEDED},
        help_text="The student sees it (64 characters at most).",
        widget=forms.TextInput(attrs={"size": 60}),
    )


class AccessCodeForm(forms.Form):
    expires_at = forms.DateTimeField(
        required=False, widget=DATETIME_INPUT, help_text="Empty: the code does not expire."
    )
    max_uses = forms.IntegerField(
        required=False, min_value=1, help_text="How many people may join with it; empty: no limit."
    )


class DurationField(forms.CharField):
    """Seconds in the database; 30s, 5m, 2h, 7d (or plain seconds) in the form."""

    def prepare_value(self, value):
        return format_duration(value) if isinstance(value, int) else value

    def to_python(self, value):
        value = (super().to_python(value) or "").strip()
        if not value:
            return None
        if value.isascii() and value.isdecimal():
            return int(value)
        try:
            return parse_duration(value)
        except ValueError as error:
            raise ValidationError(str(error)) from None


# --- the manifest --------------------------------------------------------------------------------


class ManifestUploadForm(forms.Form):
    file = forms.FileField(required=False, help_text="A YAML manifest.")
    text = forms.CharField(
        required=False,
        label="or paste it",
        widget=forms.Textarea(attrs={"rows": 12, "cols": 90, "spellcheck": "false"}),
    )
    prune = forms.BooleanField(
        required=False,
        help_text="Delete what the manifest leaves out (except what bookings still need).",
    )

    def clean(self):
        data = super().clean()
        upload = data.get("file")
        if upload:
            try:
                data["text"] = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                raise ValidationError(MANIFEST_NOT_UTF8) from None
        if not (data.get("text") or "").strip():
            raise ValidationError(MANIFEST_NO_INPUT)
        return data


class ManifestApplyForm(forms.Form):
    text = forms.CharField(widget=forms.HiddenInput, strip=False)
    prune = forms.BooleanField(required=False, widget=forms.HiddenInput)
    digest = forms.CharField(widget=forms.HiddenInput)


def plan(text: str, prune: bool) -> tuple[Manifest, list[str]]:
    manifest = load_manifest(text, name="upload")
    return manifest, change_lines(manifest_plan(manifest, prune=prune, now=timezone.now()))


def plan_digest(text: str, lines: list[str], prune: bool) -> str:
    """What the dry run showed: applying goes ahead only if text and diff are still these."""
    shown = "\0".join([text, *lines, f"prune={prune}"])
    return hashlib.sha256(shown.encode()).hexdigest()


def manifest_export_response(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("booking.import_manifest"):
        raise PermissionDenied
    response = HttpResponse(
        MANIFEST_HEADER + manifest_dump(manifest_export()),
        content_type="application/yaml; charset=utf-8",
    )
    name = f"catalogue-{timezone.localdate():%Y%m%d}.yaml"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


class ManifestPage:
    """Upload: a dry run shows the diff; applying re-reads and re-plans the text (kept in a
    hidden field) and goes ahead only when text and diff are still the ones shown."""

    TEMPLATE = "admin/lab/manifest.html"

    def __init__(self, model_admin: admin.ModelAdmin, request: HttpRequest):
        if not request.user.has_perm("booking.import_manifest"):
            raise PermissionDenied
        self.model_admin, self.request = model_admin, request

    def render(self, **context) -> TemplateResponse:
        context.setdefault("upload_form", ManifestUploadForm())
        return lab_page(
            self.request,
            self.model_admin,
            self.TEMPLATE,
            "Catalogue manifest",
            export_url=admin_url(Experiment, "manifest_export"),
            **context,
        )

    def response(self) -> HttpResponse:
        request = self.request
        if request.method != "POST":
            return self.render()
        if "apply" in request.POST:
            form = ManifestApplyForm(request.POST)
            if not form.is_valid():
                return self.render()
            data = form.cleaned_data
            return self.apply(data["text"], data["prune"], data["digest"])
        form = ManifestUploadForm(request.POST, request.FILES)
        if not form.is_valid():
            return self.render(upload_form=form)
        return self.dry_run(form.cleaned_data["text"], form.cleaned_data["prune"])

    def refused(self, text: str, prune: bool, error: ManifestError) -> TemplateResponse:
        form = ManifestUploadForm(initial={"text": text, "prune": prune})
        return self.render(upload_form=form, error=str(error))

    def dry_run(self, text: str, prune: bool, warning: str = "") -> TemplateResponse:
        try:
            _, lines = plan(text, prune)
        except ManifestError as error:
            return self.refused(text, prune, error)
        if not lines:
            self.model_admin.message_user(self.request, MANIFEST_NO_CHANGES, messages.INFO)
            return self.render(lines=lines)
        apply_form = ManifestApplyForm(
            initial={"text": text, "prune": prune, "digest": plan_digest(text, lines, prune)}
        )
        return self.render(lines=lines, apply_form=apply_form, prune=prune, warning=warning)

    def apply(self, text: str, prune: bool, digest: str) -> TemplateResponse:
        try:
            manifest, lines = plan(text, prune)
            if plan_digest(text, lines, prune) != digest:
                return self.dry_run(text, prune, warning=MANIFEST_CHANGED_SINCE)
            result = manifest_apply(
                manifest, now=timezone.now(), prune=prune, actor=self.request.user
            )
        except ManifestError as error:
            return self.refused(text, prune, error)
        self.model_admin.message_user(
            self.request, MANIFEST_APPLIED.format(count=len(result.changes)), messages.SUCCESS
        )
        # Generated access codes are among these lines: this response shows them, once.
        return self.render(applied_lines=result.lines())


# --- the usage report ----------------------------------------------------------------------------


class PeriodForm(forms.Form):
    start = forms.DateField(label="From", widget=DATE_INPUT)
    end = forms.DateField(label="To (inclusive)", widget=DATE_INPUT)

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            self.add_error("end", "The end must not be before the start.")
        return data


def day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def bar_chart(rows: list[UsageRow], width: int = 420, bar: int = 18, gap: int = 6) -> dict:
    """Geometry for the inline SVG bar chart of hours used."""
    top = max((row.hours for row in rows), default=0) or 1
    bars = [
        {
            "label": row.slug,
            "hours": row.hours,
            "y": i * (bar + gap),
            "text_y": i * (bar + gap) + bar - 5,
            "width": round(width * row.hours / top, 1),
        }
        for i, row in enumerate(rows)
    ]
    return {"bars": bars, "height": max(len(bars) * (bar + gap), bar), "width": width, "bar": bar}


def usage_report_page(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    """The report for a period of whole days in the site's time zone; ?format=csv for CSV."""
    if not request.user.has_perm("booking.view_usage_report"):
        raise PermissionDenied
    template, title = "admin/lab/usage_report.html", "Usage report"
    today = timezone.localdate()
    form = PeriodForm(
        request.GET if "start" in request.GET else None,
        initial={"start": today - timedelta(days=30), "end": today},
    )
    if form.is_bound and not form.is_valid():
        return lab_page(request, model_admin, template, title, form=form)
    period = form.cleaned_data if form.is_bound else form.initial
    first, last = period["start"], period["end"]
    report = usage_report(start=day_start(first), end=day_start(last + timedelta(days=1)))
    if request.GET.get("format") == "csv":
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="usage-{first:%Y%m%d}-{last:%Y%m%d}.csv"'
        )
        csv.writer(response).writerows(usage_csv_rows(report))
        return response
    query = f"start={first:%Y-%m-%d}&end={last:%Y-%m-%d}"
    return lab_page(
        request,
        model_admin,
        template,
        title,
        form=form,
        report=report,
        first=first,
        last=last,
        csv_url=f"{admin_url(Booking, 'report')}?{query}&format=csv",
        experiment_chart=bar_chart(report.experiments),
        pool_chart=bar_chart(report.pools),
    )
