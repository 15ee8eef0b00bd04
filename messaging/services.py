"""Recording events (in the caller's transaction) and delivering them after the commit.

The database is the record: a client that missed a live event (a dropped socket, Redis
down) replays it from GET /api/v1/session/events/. Live delivery is best effort.
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import F, Q

from booking.audit import audit_record
from booking.live import group_send_many
from booking.models import Booking, BookingStatus
from booking.serializers import iso
from messaging import events, hub
from messaging.models import Message, SessionChannel, SessionEvent, UserChannel, UserEvent
from sessions_app.models import Session

log = logging.getLogger(__name__)
_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="events")


def session_group(session_id: object) -> str:
    return f"session-{session_id}"


def user_group(user_id: int) -> str:
    return f"user-{user_id}"


def _allocate(model, key: str, ids: list) -> dict:
    """Next seq for each id; locks the counters until the transaction ends."""
    model.objects.bulk_create([model(**{f"{key}_id": i}) for i in ids], ignore_conflicts=True)
    counters = model.objects.filter(**{f"{key}_id__in": ids})
    # Locked in one order, so two fan-outs over the same sessions cannot deadlock.
    list(counters.select_for_update().order_by("pk").values_list("pk", flat=True))
    counters.update(last_seq=F("last_seq") + 1)
    return dict(counters.values_list(f"{key}_id", "last_seq"))


def _record(counter, event, key: str, group, ids: list, type: str, payload: dict, now: datetime):
    """Events for each id (a session's or a user's), each with the id's next seq; delivered
    live once the transaction commits."""
    if not ids:
        return []
    seqs = _allocate(counter, key, list(ids))
    rows = event.objects.bulk_create(
        [
            event(
                **{f"{key}_id": owner},
                seq=seq,
                type=type,
                payload={"type": type, "seq": seq, **payload},
                created_at=now,
            )
            for owner, seq in seqs.items()
        ]
    )
    if key == "session" and len(rows) >= hub.MIN_SESSIONS:
        seqs = {str(row.session_id): row.seq for row in rows}
        _deliver_after_commit(list(hub.messages(rows[0].payload, seqs)))
    else:
        _deliver_after_commit(
            [(group(getattr(row, f"{key}_id")), _event(row.payload)) for row in rows]
        )
    return rows


def _event(event: dict) -> dict:
    return {"type": "platform.event", "event": event}


def record_session_events(
    *, session_ids: list, type: str, payload: dict, now: datetime
) -> list[SessionEvent]:
    return _record(
        SessionChannel, SessionEvent, "session", session_group, session_ids, type, payload, now
    )


def record_user_events(
    *, user_ids: list, type: str, payload: dict, now: datetime
) -> list[UserEvent]:
    return _record(UserChannel, UserEvent, "user", user_group, user_ids, type, payload, now)


def _deliver_after_commit(items: list[tuple[str, dict]]) -> None:
    """(group, channel-layer message) pairs, sent once the transaction commits."""
    if items:
        transaction.on_commit(lambda: _executor.submit(deliver_now, items))


def deliver_now(items: list[tuple[str, dict]]) -> None:
    """Send to the channel layer; failures are logged, clients replay from the database."""
    try:
        group_send_many(items)
    finally:
        close_old_connections()


def _by_label(booking: Booking, by: object) -> str:
    if by is None or not getattr(by, "is_authenticated", False):
        return "system"
    return "user" if by.pk == booking.user_id else "staff"


def notify_cancelled(*, booking: Booking, reason: str, by: object, now: datetime) -> None:
    payload = {"reason": reason or "cancelled", "by": _by_label(booking, by)}
    session_id = Session.objects.filter(booking=booking).values_list("id", flat=True).first()
    if session_id is not None:
        record_session_events(
            session_ids=[session_id], type=events.SESSION_CANCELLED, payload=payload, now=now
        )
    record_user_events(
        user_ids=[booking.user_id],
        type=events.BOOKING_CHANGED,
        payload={"booking": str(booking.id), "status": booking.status, **payload},
        now=now,
    )


def notify_extended(*, booking: Booking, now: datetime) -> None:
    """The stored event holds the new end; fresh stream tokens are added at delivery."""
    session_id = Session.objects.filter(booking=booking).values_list("id", flat=True).first()
    if session_id is not None:
        record_session_events(
            session_ids=[session_id],
            type=events.SESSION_EXTENDED,
            payload={"end": iso(booking.end)},
            now=now,
        )
    record_user_events(
        user_ids=[booking.user_id],
        type=events.BOOKING_CHANGED,
        payload={"booking": str(booking.id), "status": booking.status, "end": iso(booking.end)},
        now=now,
    )


def _live_sessions(now: datetime) -> Q:
    return Q(booking__status=BookingStatus.STARTED, booking__end__gt=now)


def message_send(
    *,
    target: str,
    text: str,
    level: str = Message.Level.INFO,
    sender: object = None,
    session: Session | None = None,
    user: object = None,
    pool: object = None,
    experiment: object = None,
    now: datetime,
) -> Message:
    """Send a staff message to one session, one user, a pool, an experiment's users, or
    everyone with a current session. It is kept, and stays readable afterwards."""
    T = Message.Target
    with transaction.atomic():
        message = Message.objects.create(
            target=target,
            text=text,
            level=level,
            sender=sender if getattr(sender, "is_authenticated", False) else None,
            session=session,
            user=user,
            pool=pool,
            experiment=experiment,
            created_at=now,
        )
        sessions = Session.objects.filter(_live_sessions(now))
        if target == T.SESSION:
            sessions = Session.objects.filter(pk=session.pk)
        elif target == T.USER:
            sessions = sessions.filter(booking__user=user)
        elif target == T.POOL:
            sessions = sessions.filter(booking__pool=pool)
        elif target == T.EXPERIMENT:
            sessions = sessions.filter(booking__experiment=experiment)
        sender_name = sender.get_full_name() or sender.get_username() if sender else "lab staff"
        payload = {
            "id": message.pk,
            "level": level,
            "text": text,
            "from": sender_name or "lab staff",
        }
        session_ids = list(sessions.values_list("id", flat=True))
        record_session_events(
            session_ids=session_ids, type=events.MESSAGE, payload=payload, now=now
        )
        user_ids = [user.pk] if target == T.USER else []
        record_user_events(user_ids=user_ids, type=events.MESSAGE, payload=payload, now=now)
        message.recipients = len(session_ids) + len(user_ids)
        message.save(update_fields=["recipients"])
        audit_record(
            at=now,
            actor=sender,
            action="message.send",
            obj=message,
            detail={"target": target, "recipients": message.recipients},
        )
    return message


def session_timers_sweep(*, now: datetime) -> dict[str, int]:
    """session.ending warnings before the end, session.ended (and survey) after it."""
    warnings = sorted(settings.SESSION_ENDING_WARNINGS, reverse=True)
    horizon = now + timedelta(seconds=max(warnings, default=0))
    candidates = (
        Session.objects.filter(
            booking__status__in=[BookingStatus.STARTED, BookingStatus.ENDED],
            booking__end__lte=horizon,
            booking__end__gt=now - timedelta(seconds=settings.SURVEY_PERIOD_SECONDS),
        )
        .select_related("booking")
        .order_by("booking__end")
    )
    sent = {"ending": 0, "ended": 0}
    for session in candidates:
        with transaction.atomic():
            channel, _ = SessionChannel.objects.select_for_update().get_or_create(session=session)
            left = int((session.booking.end - now).total_seconds())
            if left > 0:
                due = [w for w in warnings if left <= w and w not in channel.warned]
                if due:
                    channel.warned = sorted({*channel.warned, *due})
                    channel.save(update_fields=["warned"])
                    record_session_events(
                        session_ids=[session.pk],
                        type=events.SESSION_ENDING,
                        payload={"seconds_left": left},
                        now=now,
                    )
                    sent["ending"] += 1
            elif not channel.ended_sent:
                channel.ended_sent = True
                channel.save(update_fields=["ended_sent"])
                record_session_events(
                    session_ids=[session.pk], type=events.SESSION_ENDED, payload={}, now=now
                )
                if settings.SURVEY_URL:
                    url = settings.SURVEY_URL.replace("{{reference}}", session.booking.reference)
                    record_session_events(
                        session_ids=[session.pk], type=events.SURVEY, payload={"url": url}, now=now
                    )
                sent["ended"] += 1
    return sent
