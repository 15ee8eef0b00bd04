"""Calendar feed tokens: derived from the secret key and a per-feed salt, kept as a hash."""

import base64
import hashlib
import hmac

from django.conf import settings

FEED_PREFIX = "c_"
FEED_TOKEN_MAX = 64


def feed_token(*, user_id: int, salt: str) -> str:
    """The token in a feed's address: c_ + 43 characters of [A-Za-z0-9_-]."""
    digest = hmac.new(
        settings.SECRET_KEY.encode(), f"calendar-feed:{user_id}:{salt}".encode(), hashlib.sha256
    ).digest()
    return FEED_PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def feed_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_feed_token(value: str) -> bool:
    return value.startswith(FEED_PREFIX) and len(value) <= FEED_TOKEN_MAX
