"""Starting sessions and issuing stream tokens. Callers hold the transaction."""

import json
from datetime import datetime, timedelta
from urllib.parse import quote

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q

from booking.audit import audit_record
from booking.errors import ApiError, rule_error
from booking.models import Booking, BookingStatus, Group, Stream
from booking.serializers import iso
from sessions_app import codes, tokens
from sessions_app.models import IssuedToken, Session

OVER_STATUSES = (BookingStatus.CANCELLED, BookingStatus.ENDED, BookingStatus.NO_SHOW)


def booking_is_over(booking: Booking, now: datetime) -> bool:
    return booking.status in OVER_STATUSES or booking.end <= now


def session_start(*, booking: Booking, now: datetime, by: AbstractBaseUser | None) -> Session:
    """Create the booking's session, or return the one it has. `booking` is locked."""
    if booking_is_over(booking, now):
        raise rule_error("booking_over")
    if booking.start > now:
        raise rule_error("not_started_yet")
    session = Session.objects.filter(booking=booking).first()
    if session is not None:
        return session
    session = Session(booking=booking, salt=codes.new_salt(), created_at=now)
    session.code_hash = codes.code_hash(codes.derive_code(session.id, session.salt))
    session.save(force_insert=True)
    Booking.objects.filter(pk=booking.pk).update(status=BookingStatus.STARTED, started_at=now)
    booking.status, booking.started_at = BookingStatus.STARTED, now
    audit_record(
        at=now, actor=by, action="session.start", obj=booking, detail={"session": str(session.id)}
    )
    return session


def session_code(session: Session) -> str:
    return codes.derive_code(session.id, session.salt)


def session_for_code(code: str) -> Session | None:
    if not isinstance(code, str) or not codes.looks_like_code(code):
        return None
    return (
        Session.objects.filter(code_hash=codes.code_hash(code))
        .select_related("booking", "booking__pool", "booking__experiment")
        .first()
    )


def session_end(*, session: Session, now: datetime) -> None:
    if session.ended_at is None:
        Session.objects.filter(pk=session.pk, ended_at__isnull=True).update(ended_at=now)
        session.ended_at = now


def _streams_of(booking: Booking) -> list[Stream]:
    return list(
        Stream.objects.filter(experiment_id=booking.experiment_id)
        .select_related("relay")
        .order_by("name")
    )


def issue_stream_tokens(
    *,
    session: Session,
    booking: Booking,
    now: datetime,
    by: AbstractBaseUser | None,
    kind: str = IssuedToken.Kind.STREAM,
    only: dict[str, list[str]] | None = None,
    exp: datetime | None = None,
) -> list[dict]:
    """Fresh stream tokens for the session: every stream, or `only` {stream: scopes}."""
    exp = exp or booking.end
    out: list[dict] = []
    records: list[IssuedToken] = []
    for stream in _streams_of(booking):
        if only is not None and stream.name not in only:
            continue
        scopes = list(stream.scopes) if only is None else only[stream.name]
        relay = stream.relay
        try:
            claims = tokens.stream_claims(
                relay=relay,
                user_id=booking.user_id,
                booking_id=str(booking.id),
                topic=stream.topic,
                scopes=scopes,
                now=now,
                exp=exp,
            )
            token = tokens.sign(relay, claims)
        except tokens.RelaySecretMissing as error:
            raise ApiError(
                "relay_unavailable", f"The relay for stream {stream.name} is not configured.", 503
            ) from error
        records.append(
            IssuedToken(
                jti=claims["jti"],
                session=session,
                kind=kind,
                stream=stream.name,
                relay=relay,
                scopes=scopes,
                issued_at=now,
                expires_at=exp,
            )
        )
        out.append(
            {
                "for": stream.name,
                "url": f"{relay.access_url.rstrip('/')}/session/{stream.topic}",
                "audience": relay.effective_audience,
                "topic": stream.topic,
                "connection_type": "session",
                "scopes": scopes,
                "token": token,
            }
        )
    IssuedToken.objects.bulk_create(records)
    audit_record(
        at=now,
        actor=by,
        action=f"token.issue.{kind}",
        obj=booking,
        detail={"jti": [r.jti for r in records], "exp": iso(exp)},
    )
    return out


def subset_request(
    *, booking: Booking, streams: list[str], scopes: list[str]
) -> dict[str, list[str]]:
    """{stream: scopes} for a narrower token set, or 422 if it asks for anything wider."""
    available = {s.name: list(s.scopes) for s in _streams_of(booking)}
    unknown = [name for name in streams if name not in available]
    if unknown or not streams:
        raise ApiError("invalid", f"Unknown streams: {', '.join(unknown) or '(none asked)'}.", 422)
    held = {scope for name in streams for scope in available[name]}
    wider = [scope for scope in scopes if scope not in held]
    if wider or not scopes:
        raise ApiError("invalid", f"Scopes not held by these streams: {', '.join(wider)}.", 422)
    wanted = {name: [s for s in available[name] if s in scopes] for name in streams}
    empty = [name for name, granted in wanted.items() if not granted]
    if empty:
        raise ApiError("invalid", f"No scope asked for is held by: {', '.join(empty)}.", 422)
    return wanted


def subset_expiry(*, booking: Booking, ttl: int | None, now: datetime) -> datetime:
    if ttl is None:
        return booking.end
    return min(booking.end, now + timedelta(seconds=ttl))


def ui_links(*, booking: Booking, code: str, streams: list[dict]) -> list[dict]:
    """The pool's UIs (or the user's group's override), their URL templates filled in."""
    group = (
        Group.objects.filter(pools=booking.pool_id, members=booking.user_id)
        .filter(~Q(ui_set=None))
        .select_related("ui_set")
        .order_by("slug")
        .first()
    )
    ui_set = group.ui_set if group is not None else booking.pool.ui_set
    if ui_set is None:
        return []
    exp = str(int(booking.end.timestamp()))
    links = []
    for ui in ui_set.uis.order_by("slug"):
        chosen = [s for s in streams if not ui.streams or s["for"] in ui.streams]
        url = (
            ui.url.replace("{{session}}", code)
            .replace("{{streams}}", quote(json.dumps(chosen, separators=(",", ":")), safe=""))
            .replace("{{exp}}", exp)
        )
        links.append({"title": ui.title, "url": url})
    return links
