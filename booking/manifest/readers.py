"""Small strict readers for manifest values. Each names the key path in its error."""

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from booking.manifest.errors import ManifestError, key_path
from booking.rules import parse_duration

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
TOPIC = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
SLUG_MAX = 64

_url_validator = URLValidator(schemes=["http", "https"])


def kind_of(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def fields(
    value: Any, path: str, *, required: Iterable[str] = (), optional: Iterable[str] = ()
) -> dict:
    """A mapping with exactly the known keys: every required one, any optional ones."""
    if not isinstance(value, dict):
        raise ManifestError(path, f"expected a mapping, got {kind_of(value)}")
    required = tuple(required)
    known = (*required, *optional)
    for key in value:
        if key not in known:
            raise ManifestError(
                key_path(path, key), f"unknown key (known keys: {', '.join(known)})"
            )
    for key in required:
        if key not in value:
            raise ManifestError(key_path(path, key), "required key is missing")
    return value


def keyed(value: Any, path: str, what: str, *, pattern: re.Pattern = SLUG) -> dict:
    """A section such as `pools`: a mapping from keys to specs (empty when left blank)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ManifestError(path, f"expected a mapping of {what}s by key, got {kind_of(value)}")
    for key in value:
        slug(key, key_path(path, key), what=f"a key in {path}", pattern=pattern)
    return value


def slug(value: Any, path: str, *, what: str = "a key", pattern: re.Pattern = SLUG) -> str:
    if not isinstance(value, str):
        raise ManifestError(path, f"{what} must be text (quote it), got {kind_of(value)}")
    if len(value) > SLUG_MAX or not pattern.match(value):
        letters = "lower-case letters" if pattern is SLUG else "letters"
        raise ManifestError(
            path, f"{what} must be {letters}, digits, - and _ (at most {SLUG_MAX}): {value!r}"
        )
    return value


def text(
    value: Any,
    path: str,
    *,
    max_length: int,
    blank: bool = False,
    pattern: re.Pattern | None = None,
) -> str:
    if not isinstance(value, str):
        raise ManifestError(path, f"expected text, got {kind_of(value)}")
    if not blank and not value.strip():
        raise ManifestError(path, "must not be empty")
    if len(value) > max_length:
        raise ManifestError(path, f"longer than {max_length} characters")
    if pattern is not None and value and not pattern.match(value):
        raise ManifestError(path, f"use letters, digits, - and _ only: {value!r}")
    return value


def url(value: Any, path: str, *, max_length: int) -> str:
    value = text(value, path, max_length=max_length)
    try:
        _url_validator(value)
    except ValidationError:
        raise ManifestError(path, f"not an http(s) URL: {value!r}") from None
    return value


def boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ManifestError(path, f"expected true or false, got {kind_of(value)}")
    return value


def whole_number(value: Any, path: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ManifestError(path, f"expected a whole number, got {kind_of(value)}")
    if value < minimum:
        raise ManifestError(path, f"must be at least {minimum}, got {value}")
    return value


def duration(value: Any, path: str) -> int:
    """Seconds from 30s, 5m, 2h or 7d (a bare whole number is seconds)."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ManifestError(
            path, f"expected a duration like 30s, 5m, 2h or 7d, got {kind_of(value)}"
        )
    try:
        return parse_duration(value)
    except ValueError:
        raise ManifestError(path, f"not a duration (use 30s, 5m, 2h or 7d): {value!r}") from None


def moment(value: Any, path: str) -> datetime:
    """An ISO 8601 time with an offset (Z or +01:00), returned in UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ManifestError(path, f"not an ISO 8601 time: {value!r}") from None
    else:
        raise ManifestError(path, f"expected an ISO 8601 time, got {kind_of(value)}")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ManifestError(
            path, f"the time {value!r} has no offset; add Z (UTC) or one like +01:00"
        )
    return parsed.astimezone(UTC)


def names(
    value: Any, path: str, *, what: str, pattern: re.Pattern = SLUG, max_length: int = SLUG_MAX
) -> tuple[str, ...]:
    """A list of distinct names (slugs, stream names, scopes)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ManifestError(path, f"expected a list of {what}, got {kind_of(value)}")
    seen: list[str] = []
    for index, item in enumerate(value):
        item_path = key_path(path, index)
        if not isinstance(item, str):
            raise ManifestError(item_path, f"expected {what} as text, got {kind_of(item)}")
        if len(item) > max_length or not pattern.match(item):
            raise ManifestError(item_path, f"not a valid name: {item!r}")
        if item in seen:
            raise ManifestError(item_path, f"{item!r} is listed twice")
        seen.append(item)
    return tuple(seen)
