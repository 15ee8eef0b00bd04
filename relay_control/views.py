"""GET /api/v1/relay/revocations/: a plain view, because relays poll it every few seconds.

One indexed read for an unchanged feed (the token, with the counter in the same
statement) and a 304.
"""

import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from booking.errors import MESSAGES
from relay_control.api_tokens import relay_for_token
from relay_control.feed import CURSOR_EXPRESSIONS, cursor_of, feed_entries_json


def _error(status: int, code: str, detail: str) -> JsonResponse:
    response = JsonResponse({"code": code, "detail": detail}, status=status)
    response["Cache-Control"] = "no-store"
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="relay"'
    return response


def bearer_token(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _etag_matches(header: str, etag: str) -> bool:
    candidates = [part.strip().removeprefix("W/") for part in header.split(",")]
    return etag in candidates or "*" in candidates


@require_GET
def revocation_feed(request: HttpRequest) -> HttpResponse:
    identity = relay_for_token(bearer_token(request), now=timezone.now(), extra=CURSOR_EXPRESSIONS)
    if identity is None:
        return _error(401, "not_authenticated", MESSAGES["not_authenticated"])
    raw = request.GET.get("since")
    since: int | None = None
    if raw is not None:
        if not (raw.isascii() and raw.isdecimal()) or len(raw) > 18:
            return _error(400, "invalid", "since must be a whole number from the feed's cursor.")
        since = int(raw)
    cursor = cursor_of(identity.extra)
    if since is not None and since > cursor.value:
        return _error(
            400, "invalid", f"since {since} is ahead of the feed (cursor {cursor.value})."
        )
    etag = f'"{cursor.value}"'
    if _etag_matches(request.headers.get("If-None-Match", ""), etag):
        response = HttpResponse(status=304)
        response["ETag"] = etag
        response["Cache-Control"] = "no-store"
        return response
    snapshot = since is None or since < cursor.purged_through
    entries = feed_entries_json(
        relay_id=identity.relay_id, since=None if snapshot else since, upto=cursor.value
    )
    # The entries arrive as JSON text (relay_control/feed.py); the rest is two numbers.
    body = f'{{"cursor":{cursor.value},"snapshot":{json.dumps(snapshot)},"entries":{entries}}}'
    response = HttpResponse(body, content_type="application/json")
    response["ETag"] = etag
    response["Cache-Control"] = "no-store"
    return response
