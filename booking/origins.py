"""Which browser origins may talk to the session endpoints and sockets: our own hosts, and
the origins (scheme + host) of the experiment UIs in the catalogue."""

import time
from urllib.parse import urlsplit

from django.conf import settings

from booking.models import UI

_CACHE_SECONDS = 30
_cache: tuple[float, frozenset[str]] = (0.0, frozenset())


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def ui_origins() -> frozenset[str]:
    global _cache
    stamp, origins = _cache
    if time.monotonic() - stamp < _CACHE_SECONDS:
        return origins
    found = {_origin_of(url) for url in UI.objects.values_list("url", flat=True)}
    origins = frozenset(o for o in found if o)
    _cache = (time.monotonic(), origins)
    return origins


def forget_ui_origins() -> None:
    global _cache
    _cache = (0.0, frozenset())


def host_is_allowed(host: str) -> bool:
    allowed = settings.ALLOWED_HOSTS
    host = host.lower()
    for pattern in allowed:
        pattern = pattern.lower()
        if pattern == "*" or host == pattern:
            return True
        if pattern.startswith(".") and (host.endswith(pattern) or host == pattern[1:]):
            return True
    return False


def origin_is_allowed(origin: str | None) -> bool:
    if not origin:
        return False
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return host_is_allowed(host) or origin.lower().rstrip("/") in ui_origins()
