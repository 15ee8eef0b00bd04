"""Session codes: opaque, high-entropy, derived (not stored), looked up by hash.

A code is "s_" + 43 characters of [A-Za-z0-9_-]. The prefix makes a session code
recognisable, so a relay API token ("r_...") or a JWT is refused before any lookup.
"""

import base64
import hashlib
import hmac
import secrets

from django.conf import settings

PREFIX = "s_"
CODE_LENGTH = len(PREFIX) + 43


def new_salt() -> str:
    return secrets.token_hex(16)


def derive_code(session_id: object, salt: str) -> str:
    digest = hmac.new(
        settings.SESSION_CODE_KEY.encode(), f"session:{session_id}:{salt}".encode(), hashlib.sha256
    ).digest()
    return PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def looks_like_code(value: str) -> bool:
    return len(value) == CODE_LENGTH and value.startswith(PREFIX)
