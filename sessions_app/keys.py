"""Asymmetric signing keys: made, encrypted at rest, rotated, published in the JWKS.

Private halves are encrypted with Fernet under SIGNING_KEYS_SECRET (from the environment;
in the embedded default derived from DJANGO_SECRET_KEY).
"""

import base64
import hashlib
import secrets
from datetime import datetime, timedelta

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from django.conf import settings
from django.db import transaction
from django.db.models import Q

from sessions_app.models import SigningKey


def _fernet() -> Fernet:
    raw = (
        settings.SIGNING_KEYS_SECRET
        or hashlib.sha256(("signing-keys:" + settings.SECRET_KEY).encode()).digest()
    )
    if isinstance(raw, str):
        raw = hashlib.sha256(raw.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(raw))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _new_pair(algorithm: str) -> tuple[bytes, dict]:
    if algorithm == SigningKey.Algorithm.EDDSA:
        private = ed25519.Ed25519PrivateKey.generate()
        raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw)}
    elif algorithm == SigningKey.Algorithm.ES256:
        private = ec.generate_private_key(ec.SECP256R1())
        numbers = private.public_key().public_numbers()
        jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64(numbers.x.to_bytes(32, "big")),
            "y": _b64(numbers.y.to_bytes(32, "big")),
        }
    else:
        raise ValueError(f"unknown algorithm {algorithm!r}")
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, jwk


def private_pem(key: SigningKey) -> bytes:
    return _fernet().decrypt(bytes(key.private_encrypted))


def public_pem(key: SigningKey) -> bytes:
    private = serialization.load_pem_private_key(private_pem(key), password=None)
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_create(*, algorithm: str, now: datetime, activate: bool = False) -> SigningKey:
    pem, jwk = _new_pair(algorithm)
    kid = secrets.token_urlsafe(12)
    jwk.update({"kid": kid, "alg": algorithm, "use": "sig"})
    return SigningKey.objects.create(
        kid=kid,
        algorithm=algorithm,
        private_encrypted=_fernet().encrypt(pem),
        public_jwk=jwk,
        created_at=now,
        activated_at=now if activate else None,
    )


def key_rotate(*, algorithm: str, now: datetime) -> dict[str, str | None]:
    """Promote the published next key to active, retire the active one, publish a new next.

    With no keys yet, one key is made active at once (nothing was signed before it) and a
    next key is published beside it.
    """
    with transaction.atomic():
        keys = SigningKey.objects.select_for_update().filter(algorithm=algorithm)
        active = keys.filter(activated_at__isnull=False, retired_at__isnull=True).first()
        upcoming = keys.filter(activated_at__isnull=True, retired_at__isnull=True).first()
        if upcoming is None:
            upcoming = key_create(algorithm=algorithm, now=now, activate=active is None)
            if active is None:
                active, upcoming = upcoming, key_create(algorithm=algorithm, now=now)
                return {"active": active.kid, "next": upcoming.kid, "retired": None}
        retired = None
        if active is not None:
            active.retired_at = now
            active.save(update_fields=["retired_at"])
            retired = active.kid
        upcoming.activated_at = now
        upcoming.save(update_fields=["activated_at"])
        following = key_create(algorithm=algorithm, now=now)
        return {"active": upcoming.kid, "next": following.kid, "retired": retired}


def active_key(algorithm: str) -> SigningKey | None:
    return (
        SigningKey.objects.filter(
            algorithm=algorithm, activated_at__isnull=False, retired_at__isnull=True
        )
        .order_by("-activated_at")
        .first()
    )


def note_signed(key: SigningKey, exp: datetime) -> None:
    """Remember the latest exp this key signed, so it stays published until then."""
    SigningKey.objects.filter(pk=key.pk).filter(
        Q(last_exp__isnull=True) | Q(last_exp__lt=exp)
    ).update(last_exp=exp)


def published_keys(now: datetime) -> list[SigningKey]:
    """Next and active keys, and retired ones until every token they signed has expired."""
    leeway = timedelta(seconds=settings.TOKEN_LEEWAY_SECONDS)
    return list(
        SigningKey.objects.filter(
            Q(retired_at__isnull=True) | Q(last_exp__isnull=False, last_exp__gt=now - leeway)
        ).order_by("algorithm", "created_at")
    )


def jwks(now: datetime) -> dict:
    return {"keys": [key.public_jwk for key in published_keys(now)]}
