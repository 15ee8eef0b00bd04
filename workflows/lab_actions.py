"""Live lab operations started from admin: an experiment out of service, and back.

Out of service: the experiment is marked unavailable (students see the reason), then every
active booking of it that overlaps the period is dealt with in the same transaction: a
running one is cancelled (its session ends, its tokens are deny-listed, relays and the
browser are told, through workflows.actions.booking_cancel_action); a future one moves to a
free experiment of the same pool when there is one, or is cancelled. Each student hears
of it by a staff message and an e-mail; the e-mails go out after the commit.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q

from booking.audit import audit_record
from booking.models import Booking, Experiment
from booking.models.bookings import ACTIVE_STATUSES
from booking.services import (
    experiment_in_service_locked,
    experiment_service_turn_take,
    experiment_slots_turn_take,
)
from messaging.models import Message
from messaging.services import message_send
from sessions_app.models import Session
from workflows.actions import booking_cancel_action

log = logging.getLogger(__name__)

# What students read (a staff message and an e-mail).
MOVED_TEXT = (
    "Your booking {reference} ({when}) was moved from {old} to {new}, because {old} is out "
    "of service: {reason}. Your time is unchanged."
)
CANCELLED_TEXT = (
    "Your booking {reference} on {old} ({when}) was cancelled, because the experiment is "
    "out of service: {reason}. It does not count against your quota."
)
ENDED_TEXT = (
    "Your session on {old} ({when}) was ended, because the experiment is out of service: "
    "{reason}. The time up to now counts; nothing after it."
)
MOVED_SUBJECT = "Booking {reference} moved to {new}"
CANCELLED_SUBJECT = "Booking {reference} cancelled: {old} out of service"
# Revocation reasons are short (relays log them); the student's message has the whole text.
CANCEL_REASON_LENGTH = 64


@dataclass
class Notice:
    user: AbstractBaseUser
    subject: str
    text: str


@dataclass
class OutOfServiceResult:
    moved: int = 0
    cancelled: int = 0
    revoked: int = 0


def _short(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0] + "…"


def _when(booking: Booking) -> str:
    zone = ZoneInfo(settings.TIME_ZONE)
    start, end = booking.start.astimezone(zone), booking.end.astimezone(zone)
    return f"{start:%a} {start.day} {start:%b %Y}, {start:%H:%M}–{end:%H:%M} {zone.key}"


def _overlapping(experiment: Experiment, start: datetime, end: datetime | None, now: datetime):
    """Active bookings of the experiment that overlap [start, end) and are not over."""
    qs = Booking.objects.filter(
        experiment=experiment, status__in=ACTIVE_STATUSES, end__gt=max(start, now)
    )
    if end is not None:
        qs = qs.filter(start__lt=end)
    # Lock the bookings only (not their users and pools, which booking_create locks first).
    return qs.select_for_update(of=("self",)).select_related("user", "pool").order_by("start")


def _free_target(booking: Booking, leaving: Experiment) -> Experiment | None:
    """Another experiment of the booking's pool that the student may use and that is free
    for exactly the booking's interval."""
    taken = Booking.objects.filter(
        status__in=ACTIVE_STATUSES, start__lt=booking.end, end__gt=booking.start
    ).values("experiment_id")
    return (
        booking.pool.experiments.exclude(pk=leaving.pk)
        .filter(available=True)
        .filter(Q(public=True) | Q(maintainers=booking.user_id))
        .exclude(pk__in=taken)
        .distinct()
        .order_by("slug")
        .first()
    )


def _move(booking: Booking, target: Experiment) -> bool:
    """Move under a savepoint. On PostgreSQL the move first takes the turn on the target's
    slots, as a new booking does (else a booking of the target written at the same moment and
    this move could each wait for the other's row until PostgreSQL broke the deadlock), and
    the exclusion constraint refuses an overlap; the check after the update does the same on
    SQLite (whose write lock we hold)."""
    try:
        with transaction.atomic():
            experiment_slots_turn_take(target.pk, (booking.start, booking.end))
            if not experiment_in_service_locked(target.pk):
                return False  # taken out of service (in the admin) since it was chosen
            Booking.objects.filter(pk=booking.pk).update(experiment=target)
            clash = (
                Booking.objects.filter(
                    experiment=target,
                    status__in=ACTIVE_STATUSES,
                    start__lt=booking.end,
                    end__gt=booking.start,
                )
                .exclude(pk=booking.pk)
                .exists()
            )
            if clash:
                raise IntegrityError("booking_no_overlap: the target became busy")
    except IntegrityError:
        return False
    return True


def _send_notices(notices: list[Notice]) -> None:
    """After the commit. The staff message is the record; an e-mail that fails is logged."""
    for notice in notices:
        if not notice.user.email:
            continue
        try:
            send_mail(notice.subject, notice.text, settings.DEFAULT_FROM_EMAIL, [notice.user.email])
        except Exception:  # any backend error: the others still go out
            log.exception("out-of-service e-mail to user %s failed", notice.user.pk)


def _lock_service_state(experiment: Experiment) -> Experiment:
    """One service change at a time, then the experiment's row. FOR NO KEY UPDATE (what the
    update of `available` takes anyway) waits for bookings that hold the row FOR SHARE (their
    insert checks that the experiment is in service), and then they wait for this action; it
    does not hold up rows written elsewhere that merely point at the experiment."""
    experiment_service_turn_take()
    return Experiment.objects.select_for_update(no_key=True).get(pk=experiment.pk)


def experiment_out_of_service_action(
    *,
    experiment: Experiment,
    reason: str,
    start: datetime,
    end: datetime | None,
    by: AbstractBaseUser | None,
    now: datetime,
    move: bool = True,
) -> OutOfServiceResult:
    """Take an experiment out of service for [start, end) (end None: until further notice)."""
    reason = reason.strip()
    result = OutOfServiceResult()
    notices: list[Notice] = []
    with transaction.atomic():
        locked = _lock_service_state(experiment)
        before = {"available": locked.available, "unavailable_reason": locked.unavailable_reason}
        locked.available = False
        locked.unavailable_reason = reason[:300]
        locked.save(update_fields=["available", "unavailable_reason"])
        for booking in _overlapping(locked, start, end, now):
            notices.append(_handle(booking, locked, reason, by, now, move, result))
        for notice in notices:
            message_send(
                target=Message.Target.USER,
                user=notice.user,
                text=notice.text,
                level=Message.Level.WARNING,
                sender=by,
                now=now,
            )
        audit_record(
            at=now,
            actor=by,
            action="experiment.out_of_service",
            obj=locked,
            before=before,
            after={"available": False, "unavailable_reason": locked.unavailable_reason},
            detail={
                "start": start.isoformat(),
                "end": end.isoformat() if end else None,
                "move": move,
                "moved": result.moved,
                "cancelled": result.cancelled,
                "revoked": result.revoked,
            },
        )
        transaction.on_commit(partial(_send_notices, notices))
    experiment.available, experiment.unavailable_reason = False, locked.unavailable_reason
    return result


def _handle(
    booking: Booking,
    experiment: Experiment,
    reason: str,
    by: AbstractBaseUser | None,
    now: datetime,
    move: bool,
    result: OutOfServiceResult,
) -> Notice:
    words = {
        "reference": booking.reference,
        "when": _when(booking),
        "old": experiment.slug,
        "reason": reason,
    }
    user = booking.user
    if booking.start > now and move:
        target = _free_target(booking, experiment)
        if target is not None and _move(booking, target):
            result.moved += 1
            audit_record(
                at=now,
                actor=by,
                action="booking.move",
                obj=booking,
                before={"experiment": experiment.slug},
                after={"experiment": target.slug},
                detail={"reason": reason},
            )
            words["new"] = target.slug
            return Notice(user, MOVED_SUBJECT.format(**words), MOVED_TEXT.format(**words))
    running = booking.start <= now
    if running and Session.objects.filter(booking=booking).exists():
        result.revoked += 1
    booking_cancel_action(
        booking=booking,
        by=by,
        now=now,
        reason=_short(f"out of service: {reason}", CANCEL_REASON_LENGTH),
    )
    result.cancelled += 1
    text = ENDED_TEXT if running else CANCELLED_TEXT
    return Notice(user, CANCELLED_SUBJECT.format(**words), text.format(**words))


def experiment_back_in_service_action(
    *, experiment: Experiment, by: AbstractBaseUser | None, now: datetime
) -> bool:
    """Available again, reason cleared; False when it was available already."""
    with transaction.atomic():
        locked = _lock_service_state(experiment)
        if locked.available:
            return False
        before = {"available": False, "unavailable_reason": locked.unavailable_reason}
        locked.available = True
        locked.unavailable_reason = ""
        locked.save(update_fields=["available", "unavailable_reason"])
        audit_record(
            at=now,
            actor=by,
            action="experiment.back_in_service",
            obj=locked,
            before=before,
            after={"available": True, "unavailable_reason": ""},
        )
    experiment.available, experiment.unavailable_reason = True, ""
    return True
