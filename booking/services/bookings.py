"""Creating, cancelling and extending bookings: every rule checked in the writing transaction."""

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache, partial

import psycopg
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Model, Q
from psycopg import pq

from booking import rules
from booking.audit import audit_record
from booking.errors import MESSAGES, ApiError, rule_error
from booking.models import Booking, BookingStatus, Experiment, Pool, Window, WindowKind
from booking.models.bookings import ACTIVE_STATUSES
from booking.notifications import booking_confirmation_enqueue
from booking.policy import pool_policy
from booking.sql import (
    AROUND_SQL,
    EXPERIMENT_IN_SERVICE_SQL,
    GENERIC_PLANS,
    INSERT_IN_TURN_SQL,
    INSERT_SQL,
    MINE_SQL,
    SERVICE_TURN_SQL,
    USER_LOCK_SQL,
    around_by_slug_sql,
    catalogue_sql,
    slots_turn,
)
from config.postgresql.base import queue_command, send_together

OVERLAP_CONSTRAINT = "booking_no_overlap"
# booking/sql.py's AROUND_BY_SLUG_SQL, for all the pool's experiments (False) or one (True).
AROUND_BY_SLUG_SQL = {
    one: around_by_slug_sql(active=ACTIVE_STATUSES, one_experiment=one) for one in (False, True)
}
REFERENCE_ATTEMPTS = 8


def _lock_on_postgresql(sql: str, params: list) -> None:
    """Run one locking statement on PostgreSQL. On SQLite the IMMEDIATE transaction already
    holds the database's write lock."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def _lock_user(user: AbstractBaseUser) -> None:
    """Serialise one user's bookings so that max_bookings and the quota hold under races
    (booking_create takes the same lock inside its catalogue read)."""
    _lock_on_postgresql(USER_LOCK_SQL, [user.pk])


@cache
def _columns(model: type[Model]) -> frozenset[str]:
    return frozenset(field.attname for field in model._meta.concrete_fields)


def _instance(model: type[Model], values: dict[str, object]) -> Model:
    """`model(**values)`, for values named by column (attname), built as the ORM builds the
    rows it reads: positionally, in the model's field order. Keywords cost about twice as much
    (a booking's three instances, 1 % of a booking POST's CPU). A column not in `values` gets
    its default, and a name that is not a column is refused, as with keywords."""
    if not values.keys() <= _columns(model):
        unknown = ", ".join(sorted(values.keys() - _columns(model)))
        raise TypeError(f"{model.__name__} has no column {unknown}")
    return model(
        *[
            values[field.attname] if field.attname in values else field.get_default()
            for field in model._meta.concrete_fields
        ]
    )


POOL_COLUMNS = (
    "id",
    "slug",
    "title",
    "min_duration",
    "max_duration",
    "book_ahead",
    "start_in_past",
    "max_bookings",
    "grace_period",
    "extend_step",
    "max_extension",
    "quota_period",
    "quota_limit",
)


def _catalogue_statement(
    user: AbstractBaseUser, pool_slug: str, experiment_slug: str | None
) -> tuple[str, list]:
    """The catalogue read (booking/sql.py) and its parameters. On PostgreSQL the same statement
    also locks the user's row until the transaction ends."""
    lock = connection.vendor == "postgresql"
    sql = catalogue_sql(lock=lock, one_experiment=experiment_slug is not None)
    params: list = [user.pk] if lock else []
    params += [user.pk, user.pk]
    if experiment_slug is not None:
        params.append(experiment_slug)
    params.append(pool_slug)
    return sql, params


def _catalogue_from_rows(
    rows: list, experiment_slug: str | None
) -> tuple[Pool, bool, list[Experiment], set[int]]:
    """(pool, has_windows, bookable experiments, the ids of those the user maintains, who may
    book them out of service) from the catalogue read's rows; refusals for the pool and
    experiment."""
    if not rows:
        raise ApiError("invalid", MESSAGES["unknown_pool"], 422)
    first = rows[0]
    pool = _instance(Pool, dict(zip(POOL_COLUMNS, first[:13], strict=True)))
    if not first[13]:
        raise rule_error("not_member")
    has_windows = bool(first[14])
    experiments, maintained = [], set()
    for row in rows:
        if row[15] is None:
            continue
        experiment = _instance(
            Experiment,
            {
                "id": row[15],
                "slug": row[16],
                "title": row[17],
                "public": bool(row[18]),
                "available": bool(row[19]),
            },
        )
        if row[20]:
            maintained.add(experiment.id)
        if row[20] or (experiment.public and experiment.available):
            experiments.append(experiment)
        elif experiment_slug is not None:
            raise rule_error("experiment_unavailable")
    if experiment_slug is not None and not experiments and rows[0][15] is None:
        raise ApiError("invalid", MESSAGES["unknown_experiment"], 422)
    if not experiments:
        raise rule_error("experiment_unavailable")
    return pool, has_windows, experiments, maintained


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


def _db_time(value: object) -> datetime:
    """A timestamp from a raw row: aware from PostgreSQL, naive UTC (or text) from SQLite."""
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(str(value))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _around_statement(
    user: AbstractBaseUser,
    pool: Pool,
    experiment_ids: list[int],
    *,
    now: datetime,
    interval: rules.Interval,
) -> tuple[str, list]:
    """AROUND_SQL (booking/sql.py) and its parameters, for the catalogue read's answer."""
    adapt = connection.ops.adapt_datetimefield_value
    marks = ", ".join(["%s"] * len(experiment_ids))
    # Only fixed fragments and placeholders go in; every value is a parameter.
    sql = AROUND_SQL.format(mine=MINE_SQL if pool.quota_period else "", marks=marks)
    params: list = [*ACTIVE_STATUSES, user.pk, pool.pk, adapt(now)]
    if pool.quota_period:
        span = timedelta(seconds=pool.quota_period)
        params += [user.pk, pool.pk, adapt(interval[1] + span), adapt(interval[0] - span)]
    params += [*experiment_ids, *ACTIVE_STATUSES, adapt(interval[1]), adapt(interval[0])]
    return sql, params


def _around_by_slug_statement(
    user: AbstractBaseUser,
    pool_slug: str,
    experiment_slug: str | None,
    *,
    now: datetime,
    interval: rules.Interval,
) -> tuple[str, list]:
    """AROUND_BY_SLUG_SQL (booking/sql.py, PostgreSQL) and its parameters: the same read from
    the request's slugs, sent with the catalogue read."""
    adapt = connection.ops.adapt_datetimefield_value
    start, end = adapt(interval[0]), adapt(interval[1])
    params: list = [pool_slug, user.pk, adapt(now), user.pk, end, start]
    if experiment_slug is not None:
        params.append(experiment_slug)
    return AROUND_BY_SLUG_SQL[experiment_slug is not None], [*params, start, end]


def _around_from_rows(
    rows: list, experiment_ids: list[int]
) -> tuple[int, list[rules.Interval], set[int]]:
    """From the read of the bookings that matter (booking/sql.py's AROUND_SQL, or its
    PostgreSQL form AROUND_BY_SLUG_SQL: the same rows): how many current bookings the user
    holds in the pool, what counts for the quota, and the candidates that are busy."""
    held = rows[0][0]
    counted: list[rules.Interval] = []
    busy: set[int] = set()
    ids = set(experiment_ids)
    for _, mine, experiment_id, raw_start, raw_end, status, raw_cancelled in rows:
        if mine is None:
            continue  # the count alone: nothing else matched
        if not mine:  # an active booking overlapping the interval
            if experiment_id in ids:  # the read's experiments may be more than the candidates
                busy.add(experiment_id)
            continue
        cancelled_at = _db_time(raw_cancelled) if raw_cancelled is not None else None
        part = rules.counted_interval(
            start=_db_time(raw_start),
            end=_db_time(raw_end),
            status=status,
            cancelled_at=cancelled_at,
        )
        if part is not None:
            counted.append(part)
    return held, counted, busy


def experiment_slots_turn_take(experiment_id: int, interval: rules.Interval) -> None:
    """Wait for the turn to write the experiment's slots in `interval`, held to the end of the
    transaction (booking/sql.py says why). Every write that puts a booking's time on an
    experiment's slots takes it first: a new booking (inside its insert), an extension, a
    move to another experiment."""
    _lock_on_postgresql(*slots_turn(experiment_id, *interval))


def experiment_service_turn_take() -> None:
    """Wait for the turn to change whether experiments are in service, held to the end of the
    transaction: such actions run one at a time (booking/sql.py says why)."""
    _lock_on_postgresql(SERVICE_TURN_SQL, [])


def experiment_in_service_locked(experiment_id: int) -> bool:
    """Whether the experiment is in service, as committed, its row locked FOR SHARE to the
    end of the transaction so that it cannot go out of service meanwhile (PostgreSQL). On
    SQLite the IMMEDIATE transaction holds the write lock: a plain read."""
    if connection.vendor != "postgresql":
        return Experiment.objects.filter(pk=experiment_id, available=True).exists()
    with connection.cursor() as cursor:
        cursor.execute(EXPERIMENT_IN_SERVICE_SQL, [experiment_id])
        row = cursor.fetchone()
    return bool(row and row[0])


class _NotInserted(Exception):
    """The insert wrote nothing (PostgreSQL, booking/sql.py): since the reads, an action took
    the experiment out of service, or a booking of its time or one with the same reference
    was committed. Another try reads again, and refuses for what it finds."""


def _insert_statement(booking: Booking, *, maintained: bool) -> tuple[str, list]:
    """INSERT_SQL for a new booking (the ORM's save() costs more than the statement), and its
    parameters. On PostgreSQL the same statement first takes the turn on the experiment's
    slots it covers, then inserts only if the experiment is still available or `maintained`
    (booking/sql.py), and inserts nothing where a constraint would refuse the row. On SQLite
    the IMMEDIATE transaction has held the write lock since the catalogue read."""
    adapt = connection.ops.adapt_datetimefield_value
    sql, in_turn = INSERT_SQL, []
    if connection.vendor == "postgresql":
        turn_sql, turn = slots_turn(booking.experiment_id, booking.start, booking.end)
        sql = INSERT_IN_TURN_SQL[turn_sql]
        in_turn = [*turn, booking.experiment_id, maintained]  # the turn's, then the check's
    return sql, [
        Booking._meta.pk.get_db_prep_value(booking.pk, connection),
        booking.reference,
        booking.user_id,
        booking.pool_id,
        booking.experiment_id,
        adapt(booking.start),
        adapt(booking.end),
        adapt(booking.booked_end),
        booking.status,
        adapt(booking.created_at),
        *in_turn,
    ]


def _written(booking: Booking, rowcount: int) -> None:
    if rowcount == 0:
        raise _NotInserted
    booking._state.adding = False
    booking._state.db = connection.alias


def _new_booking(
    *,
    user: AbstractBaseUser,
    catalogue: tuple[Pool, bool, list[Experiment], set[int]],
    around_rows: Callable[[Pool, list[int]], list],
    experiment_slug: str | None,
    interval: rules.Interval,
    now: datetime,
) -> tuple[Booking, bool]:
    """Every rule, in order, for the catalogue read's answer and the bookings around
    (`around_rows(pool, candidate ids)`, read after the user's lock): the booking to insert,
    and whether its user maintains its experiment."""
    pool, has_windows, candidates, maintained = catalogue
    start, end = interval
    policy = pool_policy(pool)
    rules.check_times(policy, now=now, start=start, end=end)
    if has_windows:
        _check_windows(pool, interval)
    ids = [e.pk for e in candidates]
    held, counted, busy = _around_from_rows(around_rows(pool, ids), ids)
    rules.check_max_bookings(policy, held=held)
    rules.check_quota(policy, existing=counted, new=interval)
    free = [e for e in candidates if e.pk not in busy]
    if not free:
        raise rule_error("slot_taken", None if experiment_slug else MESSAGES["no_free_experiment"])
    experiment = random.choice(free)  # spread "any" bookings, and races, over the kit
    booking = _instance(
        Booking,
        {
            "reference": rules.new_reference(),
            "user_id": user.pk,
            "pool_id": pool.pk,
            "experiment_id": experiment.pk,
            "start": start,
            "end": end,
            "booked_end": end,
            "status": BookingStatus.BOOKED,
            "created_at": now,
        },
    )
    # The instances read above, as `pool=` and `experiment=` would have kept them.
    Booking.pool.field.set_cached_value(booking, pool)
    Booking.experiment.field.set_cached_value(booking, experiment)
    return booking, experiment.pk in maintained


def _create_in_atomic(
    *,
    user: AbstractBaseUser,
    pool_slug: str,
    experiment_slug: str | None,
    interval: rules.Interval,
    now: datetime,
) -> Booking:
    """One statement after another in `transaction.atomic()`: on SQLite, and on PostgreSQL
    inside a caller's transaction."""

    def around_rows(pool: Pool, ids: list[int]) -> list:
        with connection.cursor() as cursor:
            cursor.execute(*_around_statement(user, pool, ids, now=now, interval=interval))
            return cursor.fetchall()

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(*_catalogue_statement(user, pool_slug, experiment_slug))
        booking, maintained = _new_booking(
            user=user,
            catalogue=_catalogue_from_rows(cursor.fetchall(), experiment_slug),
            around_rows=around_rows,
            experiment_slug=experiment_slug,
            interval=interval,
            now=now,
        )
        cursor.execute(*_insert_statement(booking, maintained=maintained))
        _written(booking, cursor.rowcount)  # nothing written: rolled back
        transaction.on_commit(partial(booking_confirmation_enqueue, booking.pk))
        return booking


def _create_in_pipeline(
    *,
    user: AbstractBaseUser,
    pool_slug: str,
    experiment_slug: str | None,
    interval: rules.Interval,
    now: datetime,
) -> Booking:
    """The same transaction on PostgreSQL in two round trips instead of five, in psycopg's
    pipeline mode: BEGIN, the plan mode (GENERIC_PLANS, booking/sql.py), the catalogue read
    (which takes the user's lock) and the read of the bookings around (from the request's
    slugs: it needs nothing the catalogue read returns) go to the server together, in one
    write (send_together); the rules run on both answers; then the insert and COMMIT go
    together. The server runs the statements in order, each in a snapshot of its own (READ
    COMMITTED), so the bookings are read after the lock is granted, as one after another.
    A refusal sends ROLLBACK instead of the insert. Where a constraint refuses its row (a
    racing booking committed first) the insert inserts nothing rather than failing
    (booking/sql.py): a failed statement would make the server skip the COMMIT, and leaving
    the pipeline could then raise the skipped COMMIT's error ("pipeline aborted") instead of
    the statement's. Should a statement fail all the same, the transaction is rolled back
    here.
    On these machines a round trip costs about 0.3 ms of CPU between the web process and
    PostgreSQL (docs/benchmarks.md, tenth look)."""
    connection.ensure_connection()
    conn = connection.connection
    cursor, around = connection.cursor(), connection.cursor()
    try:
        with connection.wrap_database_errors, conn.pipeline() as pipeline:
            send_together(pipeline)  # a write per round trip, not one per statement
            try:
                queue_command(conn, b"BEGIN")
                queue_command(conn, GENERIC_PLANS)
                cursor.execute(*_catalogue_statement(user, pool_slug, experiment_slug))
                around.execute(
                    *_around_by_slug_statement(
                        user, pool_slug, experiment_slug, now=now, interval=interval
                    )
                )
                catalogue = _catalogue_from_rows(cursor.fetchall(), experiment_slug)
                booking, maintained = _new_booking(
                    user=user,
                    catalogue=catalogue,
                    around_rows=lambda pool, ids: around.fetchall(),
                    experiment_slug=experiment_slug,
                    interval=interval,
                    now=now,
                )
                cursor.execute(*_insert_statement(booking, maintained=maintained))
                queue_command(conn, b"COMMIT")
            except BaseException:
                if conn.pgconn.pipeline_status == pq.PipelineStatus.ON:
                    queue_command(conn, b"ROLLBACK")  # sent with the pipeline's end
                raise
        # Leaving the pipeline sent the insert and COMMIT, and read their answers.
        rowcount = cursor.rowcount
    finally:
        if conn.pgconn.transaction_status != pq.TransactionStatus.IDLE:
            # A statement failed and the server skipped what followed; or the connection broke.
            try:
                connection.rollback()
            except DatabaseError:
                connection.close()
        cursor.close()
        around.close()
    _written(booking, rowcount)  # nothing written: committed nothing
    booking_confirmation_enqueue(booking.pk)
    return booking


def _in_pipeline() -> bool:
    """Whether booking_create can use its pipeline: PostgreSQL with a libpq that has pipeline
    mode, and no transaction of the caller's open (tests run in one)."""
    return (
        connection.vendor == "postgresql"
        and psycopg.capabilities.has_pipeline()
        and not connection.in_atomic_block
        and connection.get_autocommit()
    )


def booking_create(
    *,
    user: AbstractBaseUser,
    pool_slug: str,
    experiment_slug: str | None,
    start: datetime,
    end: datetime,
    now: datetime,
) -> Booking:
    """Book, with every rule checked in the transaction that writes the booking.

    The insert needs no savepoint. On PostgreSQL it inserts nothing where the exclusion
    constraint or the reference's uniqueness would refuse the row (a racing booking committed
    first, a reference already in use), or where the experiment went out of service after the
    catalogue read; on SQLite the database refuses a reference already in use. Either way
    nothing is written, and the whole booking is tried again: its reads then see what
    committed meanwhile and refuse (slot_taken, experiment_unavailable), or a booking "of any
    experiment" takes another, or a new reference goes in.
    """
    if end <= start:
        raise ApiError("invalid", "The end must be after the start.", 400)
    for _ in range(REFERENCE_ATTEMPTS):
        try:
            create = _create_in_pipeline if _in_pipeline() else _create_in_atomic
            return create(
                user=user,
                pool_slug=pool_slug,
                experiment_slug=experiment_slug,
                interval=(start, end),
                now=now,
            )
        except _NotInserted:
            continue  # read again: what committed meanwhile decides
        except IntegrityError as error:
            # SQLite (no exclusion constraint there; PostgreSQL's insert inserts nothing)
            if "reference" not in str(error):
                raise
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
        # The booking's row only: a FOR UPDATE on the pool's row too would hold up the commit
        # of every booking in the pool (its foreign key check takes FOR KEY SHARE), and the
        # writer of the slots this extension waits for could then never commit: a deadlock.
        locked = (
            Booking.objects.select_for_update(of=("self",))
            .select_related("pool")
            .get(pk=booking.pk)
        )
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
        experiment_slots_turn_take(locked.experiment_id, (locked.start, new_end))
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
