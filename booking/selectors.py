"""Reads: what a user may book, availability, and a user's bookings."""

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet

from booking import rules
from booking.errors import rule_error
from booking.models import Booking, Experiment, Group, Pool, Window, WindowKind
from booking.models.bookings import ACTIVE_STATUSES


def _visible_experiments(user: AbstractBaseUser) -> QuerySet[Experiment]:
    return Experiment.objects.filter(Q(public=True) | Q(maintainers=user.pk)).distinct()


def pool_list_for_user(user: AbstractBaseUser) -> list[Pool]:
    """The pools the user may book, each with the experiments the user may see."""
    return list(
        Pool.objects.filter(Exists(Group.objects.filter(pools=OuterRef("pk"), members=user.pk)))
        .prefetch_related(
            Prefetch("experiments", queryset=_visible_experiments(user), to_attr="visible")
        )
        .order_by("slug")
    )


def pool_is_member(user: AbstractBaseUser, pool: Pool) -> bool:
    return Group.objects.filter(pools=pool, members=user.pk).exists()


def pool_availability(
    *, pool: Pool, user: AbstractBaseUser, start: datetime, end: datetime, now: datetime
) -> dict:
    """Free intervals per experiment and for "any" experiment of the pool.

    What anyone in the pool could book: windows, experiment availability and others'
    bookings honoured; the asking user's own limits (max bookings, quota) are not.
    """
    if not pool_is_member(user, pool) and not user.is_staff:
        raise rule_error("not_member")
    horizon = now + timedelta(seconds=pool.book_ahead + pool.max_duration)
    span = (max(start, now), min(end, horizon))
    experiments = list(
        pool.experiments.filter(Q(public=True) | Q(maintainers=user.pk)).distinct().order_by("slug")
    )
    result: dict = {"experiments": {}, "any": []}
    if span[0] >= span[1]:
        result["experiments"] = {e.slug: [] for e in experiments}
        return result

    allowed: list[rules.Interval] = []
    denied: list[rules.Interval] = []
    for kind, w_start, w_end in Window.objects.filter(
        Q(kind=WindowKind.ALLOWED) | Q(start__lt=span[1], end__gt=span[0]), pool=pool
    ).values_list("kind", "start", "end"):
        (allowed if kind == WindowKind.ALLOWED else denied).append((w_start, w_end))
    open_times = rules.union(allowed) if allowed else [span]
    open_times = rules.intersect(open_times, [span])
    open_times = rules.intersect(open_times, rules.free_intervals(span, denied))

    busy: dict[int, list[rules.Interval]] = {e.pk: [] for e in experiments}
    for experiment_id, b_start, b_end in Booking.objects.filter(
        experiment__in=busy.keys(), status__in=ACTIVE_STATUSES, start__lt=span[1], end__gt=span[0]
    ).values_list("experiment_id", "start", "end"):
        busy[experiment_id].append((b_start, b_end))

    all_free: list[rules.Interval] = []
    for experiment in experiments:
        if not experiment.available:
            result["experiments"][experiment.slug] = []
            continue
        free = rules.intersect(open_times, rules.free_intervals(span, busy[experiment.pk]))
        result["experiments"][experiment.slug] = free
        all_free.extend(free)
    result["any"] = rules.union(all_free)
    return result


def booking_list_for_user(
    *, user: AbstractBaseUser, now: datetime, include_past: bool = False
) -> QuerySet[Booking]:
    qs = Booking.objects.filter(user=user.pk).select_related("pool", "experiment")
    if include_past:
        since = now - timedelta(days=settings.BOOKING_PAST_DAYS)
        return qs.filter(Q(end__gt=since)).order_by("start")
    return qs.filter(end__gt=now, status__in=ACTIVE_STATUSES).order_by("start")


def booking_get_for_user(*, user: AbstractBaseUser, booking_id: object) -> Booking | None:
    return (
        Booking.objects.filter(pk=booking_id, user=user.pk)
        .select_related("pool", "experiment")
        .first()
    )


def booking_lookup(*, reference: str, last_name: str) -> Booking | None:
    booking = (
        Booking.objects.filter(reference=rules.normalise_reference(reference))
        .select_related("pool", "experiment", "user")
        .first()
    )
    if booking is None or not last_name.strip():
        return None
    if booking.user.last_name.strip().casefold() != last_name.strip().casefold():
        return None
    return booking
