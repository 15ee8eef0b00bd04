"""Every JWT we sign or read goes through here: the one module that imports jwt.

Kinds, each with its algorithm pinned and its claims required:
- stream tokens for relays (practable shape; HS256 with the relay's secret, or EdDSA/ES256
  with one of our keys, named by `kid`);
- relay admin tokens (scopes ["relay:admin"], 5 minutes) for a relay's /bids/deny.
Also the looser reading a practable relay applies, for the test relay that plays one.
Session codes and relay API tokens are opaque random strings, never JWTs.
"""

import hashlib
import hmac
import os
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from django.conf import settings

from booking.models import Relay
from sessions_app import keys

ADMIN_TOKEN_SECONDS = 300
KID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FORBIDDEN_HEADERS = {"jku", "jwk", "x5u", "x5c", "crit"}
REQUIRED = ["exp", "nbf", "iat", "aud", "iss"]


class TokenError(Exception):
    """A token we refuse; the message never includes the token."""


class RelaySecretMissing(Exception):
    pass


def relay_secret(relay: Relay) -> bytes:
    """The relay's HS256 secret, read now (not cached) so a rotated secret needs no restart."""
    if relay.secret_file:
        try:
            value = Path(relay.secret_file).read_text().strip()
        except OSError as error:
            raise RelaySecretMissing(f"relay {relay.slug}: cannot read its secret file") from error
    elif relay.secret_env:
        value = os.environ.get(relay.secret_env, "").strip()
    else:
        value = ""
    if not value:
        raise RelaySecretMissing(f"relay {relay.slug}: no secret configured")
    return value.encode()


def pseudonym(user_id: int) -> str:
    """A stable id for a user that reveals neither name nor e-mail nor database id."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"sub:{user_id}".encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def _ts(value: datetime) -> int:
    return int(value.timestamp())


def stream_claims(
    *,
    relay: Relay,
    user_id: int,
    booking_id: str,
    topic: str,
    scopes: list[str],
    now: datetime,
    exp: datetime,
) -> dict:
    return {
        "iss": settings.PLATFORM_URL,
        "sub": pseudonym(user_id),
        "aud": [relay.effective_audience],
        "booking_id": str(booking_id),
        "topic": topic,
        "prefix": "session",
        "scopes": list(scopes),
        "iat": _ts(now),
        "nbf": _ts(now),
        "exp": _ts(exp),
        "jti": uuid.uuid4().hex,
    }


def sign(relay: Relay, claims: dict) -> str:
    if relay.algorithm == Relay.Algorithm.HS256:
        return jwt.encode(claims, relay_secret(relay), algorithm="HS256")
    key = keys.active_key(relay.algorithm)
    if key is None:
        raise RelaySecretMissing(
            f"no active {relay.algorithm} signing key: run rotate_signing_keys"
        )
    keys.note_signed(key, datetime.fromtimestamp(claims["exp"], tz=UTC))
    return jwt.encode(
        claims, keys.private_pem(key), algorithm=relay.algorithm, headers={"kid": key.kid}
    )


def relay_admin_token(relay: Relay, *, now: datetime) -> str:
    """The practable relay's admin credential for /bids/deny (always HS256, its secret)."""
    claims = {
        "iss": settings.PLATFORM_URL,
        "sub": "platform",
        "aud": [relay.effective_audience],
        "scopes": ["relay:admin"],
        "iat": _ts(now),
        "nbf": _ts(now),
        "exp": _ts(now + timedelta(seconds=ADMIN_TOKEN_SECONDS)),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, relay_secret(relay), algorithm="HS256")


def relay_admin_token_for(*, secret: bytes, audience: str, issuer: str, now: datetime) -> str:
    """The same admin credential, for a holder of the relay's secret with no Relay row (the
    relay agent on a relay host)."""
    claims = {
        "iss": issuer,
        "sub": "relay-agent",
        "aud": [audience],
        "scopes": ["relay:admin"],
        "iat": _ts(now),
        "nbf": _ts(now),
        "exp": _ts(now + timedelta(seconds=ADMIN_TOKEN_SECONDS)),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


# --- reading ----------------------------------------------------------------------------


def _header(token: str) -> dict:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise TokenError("malformed token") from error
    if FORBIDDEN_HEADERS & set(header):
        raise TokenError("token names its own key material")
    return header


def _decode(token: str, key: object, algorithm: str, audience: str) -> dict:
    try:
        return jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=audience,
            issuer=settings.PLATFORM_URL,
            leeway=settings.TOKEN_LEEWAY_SECONDS,
            options={"require": REQUIRED, "strict_aud": False},
        )
    except jwt.PyJWTError as error:
        raise TokenError(f"refused: {type(error).__name__}") from error


def _verification_key(relay: Relay, header: dict) -> object:
    if header.get("alg") != relay.algorithm:
        raise TokenError("unexpected algorithm")
    if relay.algorithm == Relay.Algorithm.HS256:
        if "kid" in header:
            raise TokenError("unexpected kid")
        return relay_secret(relay)
    kid = header.get("kid")
    if not isinstance(kid, str) or not KID_PATTERN.match(kid):
        raise TokenError("bad kid")
    return _public_key(kid, relay.algorithm)


_public_keys: dict[tuple[str, str], object] = {}


def _public_key(kid: str, algorithm: str) -> object:
    """Our public keys by kid; a key's content never changes, so it is cached once found."""
    cached = _public_keys.get((kid, algorithm))
    if cached is not None:
        return cached
    from sessions_app.models import SigningKey

    jwk = SigningKey.objects.filter(kid=kid, algorithm=algorithm).values_list(
        "public_jwk", flat=True
    )
    found = jwk.first()
    if found is None:
        raise TokenError("unknown kid")
    key = jwt.PyJWK.from_dict(found).key
    if len(_public_keys) < 1000:
        _public_keys[(kid, algorithm)] = key
    return key


def verify_stream_token(token: str, *, relay: Relay) -> dict:
    header = _header(token)
    claims = _decode(
        token, _verification_key(relay, header), relay.algorithm, relay.effective_audience
    )
    for name in ("booking_id", "topic", "prefix", "scopes", "jti", "sub"):
        if name not in claims:
            raise TokenError(f"missing {name}")
    if not isinstance(claims["booking_id"], str) or claims["prefix"] != "session":
        raise TokenError("not a stream token")
    if "relay:admin" in claims["scopes"]:
        raise TokenError("not a stream token")
    return claims


def verify_relay_admin_token(token: str, *, relay: Relay) -> dict:
    header = _header(token)
    if header.get("alg") != "HS256" or "kid" in header:
        raise TokenError("unexpected algorithm")
    claims = _decode(token, relay_secret(relay), "HS256", relay.effective_audience)
    if claims.get("scopes") != ["relay:admin"] or "booking_id" in claims:
        raise TokenError("not an admin token")
    return claims


PRACTABLE_ALGORITHMS = ["HS256", "HS384", "HS512"]


def read_as_practable_relay(token: str, *, secret: bytes, audience: str) -> dict:
    """Read a token as a practable relay does, for the test relay that stands in for one.

    Looser than our own checks on purpose (any HMAC algorithm, no issuer, no leeway, no
    required nbf/iat): it mirrors what the relay accepts. Never use it to admit anything.
    """
    try:
        return jwt.decode(
            token,
            secret,
            algorithms=PRACTABLE_ALGORITHMS,
            audience=audience,
            options={"require": ["exp", "aud"], "strict_aud": False},
        )
    except jwt.PyJWTError as error:
        raise TokenError(f"refused: {type(error).__name__}") from error
