"""The verification module refuses every malformed, forged or misdirected token."""

import base64
import json
import time
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from django.utils import timezone

from booking.models import Relay
from sessions_app import keys, tokens
from sessions_app.models import SigningKey
from tests.conftest import RELAY_SECRET
from tests.factories import make_relay

AUDIENCE = "http://127.0.0.1:9/relay-a/access"


def claims(**changes) -> dict:
    now = int(time.time())
    base = {
        "iss": "http://localhost:8000",
        "sub": "abc",
        "aud": [AUDIENCE],
        "booking_id": "b1",
        "topic": "pend00-data",
        "prefix": "session",
        "scopes": ["read"],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "j1",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture
def hs_relay(db, settings) -> Relay:
    settings.PLATFORM_URL = "http://localhost:8000"
    return make_relay()


@pytest.fixture
def ed_relay(db, settings) -> Relay:
    settings.PLATFORM_URL = "http://localhost:8000"
    keys.key_rotate(algorithm="EdDSA", now=timezone.now())
    return make_relay("relay-ed", algorithm="EdDSA")


def good_hs() -> str:
    return jwt.encode(claims(), RELAY_SECRET, algorithm="HS256")


def test_a_good_token_is_accepted(hs_relay):
    assert tokens.verify_stream_token(good_hs(), relay=hs_relay)["booking_id"] == "b1"


def test_a_good_eddsa_token_is_accepted(ed_relay):
    signed = tokens.sign(ed_relay, claims(aud=[ed_relay.effective_audience]))
    header = jwt.get_unverified_header(signed)
    assert header["alg"] == "EdDSA" and header["kid"] == keys.active_key("EdDSA").kid
    assert tokens.verify_stream_token(signed, relay=ed_relay)["topic"] == "pend00-data"


def _forgeries(ed_relay_public_pem: bytes) -> dict[str, str]:
    none_token = b64({"alg": "none", "typ": "JWT"}) + "." + b64(claims()) + "."
    tampered_parts = good_hs().split(".")
    tampered_parts[1] = b64(claims(booking_id="someone-else"))
    return {
        "alg none": none_token,
        "alg none with signature": none_token + "AAAA",
        "HS256 signed with the public key": _hs_with_key(ed_relay_public_pem),
        "wrong secret": jwt.encode(claims(), "another-secret-another-secret-xx", algorithm="HS256"),
        "tampered payload": ".".join(tampered_parts),
        "wrong aud": jwt.encode(
            claims(aud=["https://other.example.org/access"]), RELAY_SECRET, algorithm="HS256"
        ),
        "prefix of aud": jwt.encode(claims(aud=[AUDIENCE[:-3]]), RELAY_SECRET, algorithm="HS256"),
        "aud extended": jwt.encode(claims(aud=[AUDIENCE + "x"]), RELAY_SECRET, algorithm="HS256"),
        "wrong iss": jwt.encode(
            claims(iss="http://evil.example.org"), RELAY_SECRET, algorithm="HS256"
        ),
        "iss prefix": jwt.encode(
            claims(iss="http://localhost:800"), RELAY_SECRET, algorithm="HS256"
        ),
        "missing exp": jwt.encode(claims(exp=None), RELAY_SECRET, algorithm="HS256"),
        "missing nbf": jwt.encode(claims(nbf=None), RELAY_SECRET, algorithm="HS256"),
        "missing iat": jwt.encode(claims(iat=None), RELAY_SECRET, algorithm="HS256"),
        "missing iss": jwt.encode(claims(iss=None), RELAY_SECRET, algorithm="HS256"),
        "missing aud": jwt.encode(claims(aud=None), RELAY_SECRET, algorithm="HS256"),
        "expired beyond leeway": jwt.encode(
            claims(exp=int(time.time()) - 120), RELAY_SECRET, algorithm="HS256"
        ),
        "not yet valid": jwt.encode(
            claims(nbf=int(time.time()) + 600), RELAY_SECRET, algorithm="HS256"
        ),
        "numeric booking_id": jwt.encode(claims(booking_id=42), RELAY_SECRET, algorithm="HS256"),
        "admin token as stream token": jwt.encode(
            claims(scopes=["relay:admin"], booking_id=None, topic=None, prefix=None),
            RELAY_SECRET,
            algorithm="HS256",
        ),
        "jku header": jwt.encode(
            claims(),
            RELAY_SECRET,
            algorithm="HS256",
            headers={"jku": "https://evil.example.org/jwks"},
        ),
        "jwk header": jwt.encode(
            claims(), RELAY_SECRET, algorithm="HS256", headers={"jwk": {"kty": "oct"}}
        ),
        "kid on an HS256 token": jwt.encode(
            claims(), RELAY_SECRET, algorithm="HS256", headers={"kid": "x"}
        ),
        "garbage": "not.a.token",
        "empty": "",
        "session code": "s_" + "A" * 43,
    }


def _hs_with_key(key: bytes) -> str:
    header = b64({"alg": "HS256", "typ": "JWT"})
    payload = b64(claims())
    import hashlib
    import hmac

    signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


def test_the_negative_corpus_is_refused_by_every_relay_kind(hs_relay, ed_relay):
    public = keys.public_pem(keys.active_key("EdDSA"))
    corpus = _forgeries(public)
    accepted = []
    for name, token in corpus.items():
        for relay in (hs_relay, ed_relay):
            try:
                tokens.verify_stream_token(token, relay=relay)
            except tokens.TokenError:
                continue
            accepted.append((name, relay.slug))
    # the one good token of the corpus would have been accepted: prove the check can fail
    assert tokens.verify_stream_token(good_hs(), relay=hs_relay)
    assert accepted == []


@pytest.mark.parametrize(
    "kid", ["../../etc/passwd", "1' OR '1'='1", "unknown-kid", "", "a" * 65, "kid with space"]
)
def test_bad_or_unknown_kids_are_refused(ed_relay, kid):
    key = keys.active_key("EdDSA")
    token = jwt.encode(claims(), keys.private_pem(key), algorithm="EdDSA", headers={"kid": kid})
    with pytest.raises(tokens.TokenError):
        tokens.verify_stream_token(token, relay=ed_relay)


def test_an_hs256_token_is_refused_by_an_eddsa_relay(ed_relay):
    with pytest.raises(tokens.TokenError, match="algorithm"):
        tokens.verify_stream_token(good_hs(), relay=ed_relay)


def test_an_es256_key_signs_and_is_published(db, settings):
    settings.PLATFORM_URL = "http://localhost:8000"
    keys.key_rotate(algorithm="ES256", now=timezone.now())
    relay = make_relay("relay-es", algorithm="ES256")
    signed = tokens.sign(relay, claims(aud=[relay.effective_audience]))
    assert tokens.verify_stream_token(signed, relay=relay)["jti"] == "j1"
    kid = jwt.get_unverified_header(signed)["kid"]
    published = {k["kid"]: k for k in keys.jwks(timezone.now())["keys"]}
    assert published[kid]["crv"] == "P-256"
    # a relay verifying with our JWKS alone (no call home) accepts it
    jwk = jwt.PyJWK.from_dict(published[kid])
    jwt.decode(signed, jwk.key, algorithms=["ES256"], audience=relay.effective_audience)


def test_relay_admin_tokens_are_their_own_kind(hs_relay):
    admin = tokens.relay_admin_token(hs_relay, now=timezone.now())
    claims_ = tokens.verify_relay_admin_token(admin, relay=hs_relay)
    assert claims_["scopes"] == ["relay:admin"] and claims_["aud"] == [AUDIENCE]
    assert claims_["exp"] - claims_["iat"] == 300
    with pytest.raises(tokens.TokenError):
        tokens.verify_stream_token(admin, relay=hs_relay)
    with pytest.raises(tokens.TokenError):
        tokens.verify_relay_admin_token(good_hs(), relay=hs_relay)


def test_private_keys_are_encrypted_at_rest(ed_relay):
    key = keys.active_key("EdDSA")
    stored = bytes(SigningKey.objects.get(pk=key.pk).private_encrypted)
    assert b"PRIVATE KEY" not in stored
    assert b"PRIVATE KEY" in keys.private_pem(key)
    pem = keys.public_pem(key)
    assert serialization.load_pem_public_key(pem)


class TestRotation:
    def test_the_next_key_is_published_before_it_signs(self, db):
        now = timezone.now()
        first = keys.key_rotate(algorithm="EdDSA", now=now)
        published = {k["kid"] for k in keys.jwks(now)["keys"]}
        assert {first["active"], first["next"]} == published
        second = keys.key_rotate(algorithm="EdDSA", now=now + timedelta(minutes=10))
        assert second["active"] == first["next"]  # the published one took over
        assert second["retired"] == first["active"]

    def test_a_retired_key_stays_until_its_tokens_expire(self, db, settings):
        settings.PLATFORM_URL = "http://localhost:8000"
        now = timezone.now()
        first = keys.key_rotate(algorithm="EdDSA", now=now)
        relay = make_relay("relay-ed", algorithm="EdDSA")
        exp = now + timedelta(hours=1)
        tokens.sign(relay, claims(exp=int(exp.timestamp())))
        keys.key_rotate(algorithm="EdDSA", now=now + timedelta(minutes=10))
        assert first["active"] in {k["kid"] for k in keys.jwks(now + timedelta(minutes=30))["keys"]}
        later = exp + timedelta(seconds=settings.TOKEN_LEEWAY_SECONDS + 1)
        assert first["active"] not in {k["kid"] for k in keys.jwks(later)["keys"]}

    def test_the_jwks_endpoint_serves_only_public_halves(self, db, client):
        keys.key_rotate(algorithm="EdDSA", now=timezone.now())
        body = client.get("/.well-known/jwks.json").json()
        assert len(body["keys"]) == 2
        for jwk in body["keys"]:
            assert "d" not in jwk and jwk["kty"] == "OKP" and jwk["alg"] == "EdDSA"

    def test_the_command_rotates(self, db):
        from io import StringIO

        from django.core.management import call_command

        out = StringIO()
        call_command("rotate_signing_keys", stdout=out)
        assert "EdDSA: active" in out.getvalue() and "ES256: active" in out.getvalue()
        assert SigningKey.objects.count() == 4
