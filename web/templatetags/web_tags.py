"""Times shown in the viewer's time zone: the server writes UTC, the browser rewrites it."""

from datetime import UTC, datetime

from django import template
from django.utils.html import format_html

from booking.serializers import iso

register = template.Library()


def utc_text(value: datetime, style: str) -> str:
    """The text shown before the browser rewrites it (and without JavaScript)."""
    utc = value.astimezone(UTC)
    if style == "date":
        return f"{utc:%A} {utc.day} {utc:%B %Y}"
    if style == "time":
        return f"{utc:%H:%M} UTC"
    return f"{utc:%a} {utc.day} {utc:%b %Y}, {utc:%H:%M} UTC"


@register.simple_tag
def local_time(value: datetime | None, style: str = "datetime") -> str:
    """<time> in UTC; web/static/web/common.js shows it in the browser's zone."""
    if value is None:
        return ""
    text = utc_text(value, style)
    return format_html('<time datetime="{}" data-local="{}">{}</time>', iso(value), style, text)


@register.simple_tag
def local_range(start: datetime, end: datetime) -> str:
    """start – end; the end's date is left out when it is the start's day (in the viewer's zone)."""
    return format_html(
        '{}&#8201;–&#8201;<time datetime="{}" data-local="end" data-start="{}">{}</time>',
        local_time(start),
        iso(end),
        iso(start),
        utc_text(end, "datetime"),
    )
