"""Creating, cancelling and extending bookings: every rule checked in the writing transaction."""

import random
from datetime import datetime, timedelta
from functools import partial

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q

from booking import rules
from booking.audit import audit_record
from booking.errors import MESSAGES, ApiError, rule_error
from booking.models import Booking, BookingStatus, Experiment, Group, Pool, Window, WindowKind
from booking.models.bookings import ACTIVE_STATUSES
from booking.notifications import booking_confirmation_enqueue
from booking.policy import pool_policy

OVERLAP_CONSTRAINT = "booking_no_overlap"
REFERENCE_ATTEMPTS = 8


def _lock_user(user: AbstractBaseUser) -> None:
    """Serialise one user's bookings so that max_bookings and the quota hold under races.

    On SQLite the IMMEDIATE transaction already holds the database's write lock.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM auth_user WHERE id = %s FOR UPDATE", [user.pk])


def _pool_for(user: AbstractBaseUser, pool_slug: str) -> Pool:
    pool = (
        Pool.objects.filter(slug=pool_slug)
        .annotate(is_member=Exists(Group.objects.filter(pools=OuterRef("pk"), members=user.pk)))
        .first()
    )
    if pool is None:
        raise ApiError("invalid", MESSAGES["unknown_pool"], 422)
    if not pool.is_member:
        raise rule_error("not_member")
    return pool


def _candidates(
    user: AbstractBaseUser, pool: Pool, experiment_slug: str | None
) -> list[Experiment]:
    """The experiments this booking may use: the one named, or every bookable one."""
    maintained = Experiment.maintainers.through.objects.filter(
        experiment_id=OuterRef("pk"), user_id=user.pk
    )
    qs = pool.experiments.annotate(is_maintainer=Exists(maintained))
    if experiment_slug is not None:
        experiment = qs.filter(slug=experiment_slug).first()
        if experiment is None:
            raise ApiError("invalid", MESSAGES["unknown_experiment"], 422)
        if not experiment.is_maintainer and not (experiment.public and experiment.available):
            raise rule_error("experiment_unavailable")
        return [experiment]
    experiments = [e for e in qs if e.is_maintainer or (e.public and e.available)]
    if not experiments:
        raise rule_error("experiment_unavailable")
    return experiments


def _check_windows(pool: Pool, interval: rules.Interval) -> None:
    allowed: list[rules.Interval] = []
    denied: list[rules.Interval] = []
    for kind, start, end in Window.objects.filter(pool=pool).values_list("kind", "start", "end"):
        (allowed if kind == WindowKind.ALLOWED else denied).append((start, end))
    rules.check_windows(interval, allowed=allowed, denied=denied)


def _user_intervals(
    user: AbstractBaseUser,
    pool: Pool,
    *,
    now: datetime,
    around: rules.Interval,
    exclude: object = None,
) -> tuple[int, list[rules.Interval]]:
    """How many current/future bookings the user holds in the pool, and what counts for quota."""
    wanted = Q(end__gt=now, status__in=ACTIVE_STATUSES)
    if pool.quota_period:
        span = timedelta(seconds=pool.quota_period)
        wanted |= Q(start__lt=around[1] + span, end__gt=around[0] - span)
    rows = Booking.objects.filter(wanted, user=user.pk, pool=pool).exclude(pk=exclude)
    held = 0
    counted: list[rules.Interval] = []
    for start, end, status, cancelled_at in rows.values_list(
        "start", "end", "status", "cancelled_at"
    ):
        if status in ACTIVE_STATUSES and end > now:
            held += 1
        part = rules.counted_interval(
            start=start, end=end, status=status, cancelled_at=cancelled_at
        )
        if part is not None:
            counted.append(part)
    return held, counted


def _busy_experiments(
    experiment_ids: list[int], interval: rules.Interval, exclude: object = None
) -> set[int]:
    qs = Booking.objects.filter(
        experiment__in=experiment_ids,
        status__in=ACTIVE_STATUSES,
        start__lt=interval[1],
        end__gt=interval[0],
    )
    if exclude is not None:
        qs = qs.exclude(pk=exclude)
    return set(qs.values_list("experiment_id", flat=True))


def _is_overlap_violation(error: IntegrityError) -> bool:
    return OVERLAP_CONSTRAINT in str(error)


def _insert(booking: Booking) -> bool:
    """Insert under a savepoint; False when the database refuses it as an overlap."""
    for _ in range(REFERENCE_ATTEMPTS):
        booking.reference = rules.new_reference()
        try:
            with transaction.atomic():
                booking.save(force_insert=True)
            return True
        except IntegrityError as error:
            if _is_overlap_violation(error):
                return False
            if "reference" not in str(error):
                raise
    raise ApiError("server_busy", MESSAGES["server_busy"], 503)


def booking_create(
    *,
    user: AbstractBaseUser,
    pool_slug: str,
    experiment_slug: str | None,
    start: datetime,
    end: datetime,
    now: datetime,
) -> Booking:
    if end <= start:
        raise ApiError("invalid", "The end must be after the start.", 400)
    interval = (start, end)
    with transaction.atomic():
        _lock_user(user)
        pool = _pool_for(user, pool_slug)
        candidates = _candidates(user, pool, experiment_slug)
        policy = pool_policy(pool)
        rules.check_times(policy, now=now, start=start, end=end)
        _check_windows(pool, interval)
        held, counted = _user_intervals(user, pool, now=now, around=interval)
        rules.check_max_bookings(policy, held=held)
        rules.check_quota(policy, existing=counted, new=interval)

        busy = _busy_experiments([e.pk for e in candidates], interval)
        free = [e for e in candidates if e.pk not in busy]
        if not free:
            raise rule_error(
                "slot_taken", None if experiment_slug else MESSAGES["no_free_experiment"]
            )
        random.shuffle(free)  # spread "any" bookings, and races, across the kit
        for experiment in free:
            booking = Booking(
                user_id=user.pk,
                pool=pool,
                experiment=experiment,
                start=start,
                end=end,
                booked_end=end,
                status=BookingStatus.BOOKED,
                created_at=now,
            )
            if _insert(booking):
                transaction.on_commit(partial(booking_confirmation_enqueue, booking.pk))
                return booking
        raise rule_error("slot_taken")


def booking_cancel(
    *, booking: Booking, by: AbstractBaseUser | None, reason: str = "", now: datetime
) -> tuple[Booking, bool]:
    """Cancel a booking; returns (booking, changed). Cancelling again changes nothing."""
    with transaction.atomic():
        locked = Booking.objects.select_for_update().get(pk=booking.pk)
        if locked.status not in ACTIVE_STATUSES or locked.end <= now:
            return locked, False
        before = {"status": locked.status}
        locked.status = BookingStatus.CANCELLED
        locked.cancelled_at = now
        locked.cancelled_by = by if getattr(by, "is_authenticated", False) else None
        locked.cancel_reason = reason[:300]
        locked.save(update_fields=["status", "cancelled_at", "cancelled_by", "cancel_reason"])
        audit_record(
            at=now,
            actor=by,
            action="booking.cancel",
            obj=locked,
            before=before,
            after={"status": locked.status},
            detail={"reason": locked.cancel_reason, "running": locked.start <= now},
        )
        return locked, True


def booking_extend(
    *, booking: Booking, seconds: int | None, now: datetime, by: AbstractBaseUser | None = None
) -> Booking:
    """Extend a current booking by `seconds` (default: the pool's step)."""
    with transaction.atomic():
        locked = Booking.objects.select_for_update().select_related("pool").get(pk=booking.pk)
        if locked.status not in ACTIVE_STATUSES or locked.end <= now:
            raise rule_error("booking_over")
        if locked.start > now:
            raise rule_error("not_started_yet")
        policy = pool_policy(locked.pool)
        step = policy.extend_step if seconds is None else seconds
        new_end = rules.check_extension(
            policy, booked_end=locked.booked_end, end=locked.end, seconds=step
        )
        added = (locked.end, new_end)
        _check_windows(locked.pool, added)
        _lock_user(locked.user)
        _, counted = _user_intervals(
            locked.user, locked.pool, now=now, around=added, exclude=locked.pk
        )
        counted.append((locked.start, new_end))
        rules.check_quota(policy, existing=counted, new=added, already_counted=True)
        if _busy_experiments([locked.experiment_id], added, exclude=locked.pk):
            raise rule_error("extension_blocked")
        old_end = locked.end
        locked.end = new_end
        try:
            with transaction.atomic():
                locked.save(update_fields=["end"])
        except IntegrityError as error:
            if _is_overlap_violation(error):
                raise rule_error("extension_blocked") from None
            raise
        audit_record(
            at=now,
            actor=by,
            action="booking.extend",
            obj=locked,
            before={"end": old_end.isoformat()},
            after={"end": new_end.isoformat()},
        )
        return locked
