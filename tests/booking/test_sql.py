"""The hand-written statements of the booking hot path stay in step with the models."""

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from booking.models import Booking
from booking.sql import INSERT_SQL, SLOT_SPAN


def book(client, lab, start: datetime):
    """A ten-minute booking of pend00 through the API; its response."""
    return client.post(
        "/api/v1/bookings/",
        {
            "pool": lab.pool.slug,
            "experiment": lab.pend00.slug,
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=10)).isoformat(),
        },
        content_type="application/json",
    )


def test_the_insert_names_every_column_of_a_booking():
    listed = re.search(r"\((.*?)\)\s*VALUES", INSERT_SQL, re.S).group(1)
    columns = {name.strip().strip('"') for name in listed.split(",")}
    assert columns == {field.column for field in Booking._meta.concrete_fields}


def test_a_booking_made_by_the_api_reads_back_like_one_made_by_the_orm(lab, student_client):
    start = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    made = book(student_client, lab, start)
    assert made.status_code == 201, made.content
    stored = Booking.objects.get(pk=made.json()["id"])
    assert (stored.start, stored.end, stored.booked_end) == (
        start,
        start + timedelta(minutes=10),
        start + timedelta(minutes=10),
    )
    assert stored.user_id == lab.student.pk and stored.experiment_id == lab.pend00.pk
    assert stored.status == "booked" and stored.cancel_reason == ""
    assert stored.started_at is None and stored.cancelled_at is None
    assert stored.reference == made.json()["reference"]


def test_on_postgresql_the_hot_path_statements_are_prepared_once_per_connection(
    lab, student_client
):
    """PostgreSQL parses and plans the booking statements once per pooled connection: with
    server-side binding psycopg prepares a statement from its fifth run on a connection."""
    from django.db import connection

    from config.settings.env import PREPARE_THRESHOLD

    base = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    for n in range(PREPARE_THRESHOLD + 1):
        made = book(student_client, lab, base + timedelta(minutes=10 * n))
        assert made.status_code == 201, made.content
        cancelled = student_client.post(f"/api/v1/bookings/{made.json()['id']}/cancel/")
        assert cancelled.status_code == 200, cancelled.content
    options = connection.settings_dict["OPTIONS"]
    if connection.vendor != "postgresql":
        assert "prepare_threshold" not in options and "server_side_binding" not in options
        return
    assert options["server_side_binding"] is True
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any("FOR NO KEY UPDATE" in t and "booking_pool" in t for t in prepared), prepared
    assert any("INSERT INTO booking_booking" in t and "FOR SHARE" in t for t in prepared), prepared


def _spans(experiment: int, start: datetime, end: datetime) -> set | str:
    """The span numbers a write of [start, end) locks, or "experiment" for the whole turn."""
    from booking.sql import EXPERIMENT_TURN_SQL, slots_turn

    sql, params = slots_turn(experiment, start, end)
    if sql == EXPERIMENT_TURN_SQL:
        assert params == [experiment]
        return "experiment"
    assert params[:2] == [experiment, experiment] and params[2] <= params[3]
    return set(range(params[2], params[3] + 1))


@given(
    first=st.integers(min_value=0, max_value=10**9),
    first_length=st.integers(min_value=1, max_value=6 * 3600 * 10**6),
    gap=st.integers(min_value=-6 * 3600 * 10**6, max_value=6 * 3600 * 10**6),
    second_length=st.integers(min_value=1, max_value=6 * 3600 * 10**6),
)
def test_overlapping_writes_of_one_experiment_always_share_a_turn(
    first, first_length, gap, second_length
):
    """Property (microsecond instants from 2026): two intervals that overlap lock a span in
    common, or one of them takes the whole experiment's turn; a write locks a run of at most
    MAX_SPANS spans, and only one longer than MAX_SPANS - 1 spans of time takes the whole
    experiment's turn."""
    from booking.sql import MAX_SPANS

    base = datetime(2026, 1, 1, tzinfo=UTC)
    a = (base + timedelta(microseconds=first), base + timedelta(microseconds=first + first_length))
    b_start = a[1] + timedelta(microseconds=gap)
    b = (b_start, b_start + timedelta(microseconds=second_length))
    spans_a, spans_b = _spans(7, *a), _spans(7, *b)
    for spans, (start, end) in ((spans_a, a), (spans_b, b)):
        long = end - start > timedelta(seconds=(MAX_SPANS - 1) * SLOT_SPAN)
        if spans == "experiment":
            assert long  # a write shorter than MAX_SPANS - 1 spans can never need more
        else:
            assert len(spans) <= MAX_SPANS
    if a[0] < b[1] and b[0] < a[1] and "experiment" not in (spans_a, spans_b):
        assert spans_a & spans_b


def test_writes_that_meet_at_a_span_boundary_take_different_turns():
    start = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)  # a multiple of SLOT_SPAN since 1970
    assert _spans(1, start, start + timedelta(minutes=30)) == set(
        range(
            int(start.timestamp()) // SLOT_SPAN, int(start.timestamp()) // SLOT_SPAN + 1800 // 300
        )
    )
    before = _spans(1, start - timedelta(minutes=5), start)
    after = _spans(1, start, start + timedelta(minutes=5))
    assert len(before) == len(after) == 1 and not before & after
    # one microsecond more and they share the span
    assert _spans(1, start - timedelta(minutes=5), start + timedelta(microseconds=1)) & after
    # experiment ids past 2**31 fold onto 31 bits (the advisory locks' keys are 32-bit)
    from booking.sql import slots_turn

    assert slots_turn(2**31 + 5, start, start + timedelta(minutes=5))[1][:2] == [5, 5]


@pytest.mark.django_db(transaction=True)  # each atomic block a transaction of its own
def test_on_postgresql_a_write_holds_its_spans_and_the_experiment_shared():
    """What the turn statement really locks (pg_locks), for a short write and a long one."""
    from django.db import connection, transaction

    from booking.sql import MAX_SPANS, SLOTS_LOCK_CLASS, slots_turn

    if connection.vendor != "postgresql":  # every writer takes the database's one write lock
        assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
        return
    locks = (
        "SELECT classid, objid, objsubid, mode FROM pg_locks"
        " WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted"
    )
    start = datetime(2026, 12, 2, 10, 2, tzinfo=UTC)
    first = int(start.timestamp()) // SLOT_SPAN
    for end, expected in (
        (
            start + timedelta(minutes=11),  # 10:02-10:13: the spans from 10:00, 10:05, 10:10
            {(SLOTS_LOCK_CLASS, 42, 2, "ShareLock")}
            | {(42, first + n, 1, "ExclusiveLock") for n in range(3)},
        ),
        (
            start + timedelta(seconds=MAX_SPANS * SLOT_SPAN),  # one span too many
            {(SLOTS_LOCK_CLASS, 42, 2, "ExclusiveLock")},
        ),
    ):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(*slots_turn(42, start, end))
            cursor.execute(locks)
            assert set(cursor.fetchall()) == expected


@pytest.mark.parametrize("quota", [False, True])
def test_the_read_of_the_bookings_around_counts_the_users_and_sends_only_what_matters(lab, quota):
    """The student's current bookings in the pool are counted by the server, not sent one
    per row; what comes back one per row is
    the candidates' active bookings that overlap the interval and, for a pool with a quota,
    the student's bookings within the quota's period (cancelled ones too: a cancellation
    while running still counts). Both forms of the read: the one after the catalogue read
    (SQLite, and PostgreSQL in a caller's transaction) and, on PostgreSQL, the one sent with
    it."""
    from django.db import connection

    from booking.services.bookings import (
        _around_by_slug_statement,
        _around_from_rows,
        _around_statement,
    )
    from tests.factories import make_booking

    now = timezone.now().replace(microsecond=0)
    lab.pool.quota_period = 86400 if quota else None
    lab.pool.quota_limit = 10 * 3600 if quota else None
    lab.pool.save()
    start = now + timedelta(days=3)
    interval = (start, start + timedelta(minutes=10))
    # Five current bookings of the student's in the pool, a day or more away from the interval.
    for n in range(5):
        make_booking(lab.student, lab.pool, lab.pend01, now + timedelta(days=5, hours=n))
    # Within the quota's period: one booked, one cancelled while running (30 of 60 minutes).
    near = make_booking(lab.student, lab.pool, lab.pend01, start - timedelta(hours=2))
    make_booking(
        lab.student,
        lab.pool,
        lab.pend01,
        start + timedelta(hours=2),
        minutes=60,
        status="cancelled",
        cancelled_at=start + timedelta(hours=2, minutes=30),
    )
    # Overlapping the interval: student2's on pend00 counts, a cancelled one and one in
    # another pool's experiment do not.
    make_booking(lab.student2, lab.pool, lab.pend00, start - timedelta(minutes=5))
    make_booking(lab.student2, lab.pool, lab.pend01, start, status="cancelled")
    make_booking(lab.student2, lab.other_pool, lab.other_pool.experiments.get(), start)
    candidates = [lab.pend00.pk, lab.pend01.pk]
    statements = [_around_statement(lab.student, lab.pool, candidates, now=now, interval=interval)]
    if connection.vendor == "postgresql":
        statements.append(
            _around_by_slug_statement(lab.student, lab.pool.slug, None, now=now, interval=interval)
        )
    for sql, params in statements:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        assert [row[0] for row in rows] == [6] * len(rows)  # the count in every row
        mine = sorted(row[1:5] for row in rows if row[1])
        others = [row[1:3] for row in rows if row[1] is not None and not row[1]]
        assert others == [(False, lab.pend00.pk)], rows
        assert len(rows) == len(others) + len(mine)  # nothing else, not one row per booking
        held, counted, busy = _around_from_rows(rows, candidates)
        assert (held, busy) == (6, {lab.pend00.pk})
        if quota:
            assert [row[1] for row in mine] == [lab.pend01.pk] * 2
            assert sorted(counted) == [
                (near.start, near.end),
                (start + timedelta(hours=2), start + timedelta(hours=2, minutes=30)),
            ]
        else:
            assert mine == [] and counted == []


NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("model", "values"),
    [
        (
            "Booking",
            {
                "id": uuid.UUID("12345678-1234-4678-9234-567812345678"),
                "reference": "ABC234",
                "user_id": 7,
                "pool_id": 3,
                "experiment_id": 5,
                "start": NOON,
                "end": NOON + timedelta(minutes=10),
                "booked_end": NOON + timedelta(minutes=10),
                "status": "booked",
                "created_at": NOON - timedelta(hours=1),
            },
        ),
        ("Pool", {"id": 3, "slug": "pendulums", "title": "Pendulums", "max_bookings": 2}),
        ("Experiment", {"id": 5, "slug": "pend00", "title": "P", "public": True}),
    ],
)
def test_an_instance_built_by_column_is_the_one_keywords_build(model, values):
    """booking_create builds its instances positionally (services/bookings.py's _instance)."""
    from booking import models
    from booking.services.bookings import _instance

    model = getattr(models, model)
    built, expected = _instance(model, values), model(**values)
    for field in model._meta.concrete_fields:
        assert getattr(built, field.attname) == getattr(expected, field.attname), field.name
    assert (built._state.adding, built._state.db) == (True, None)


def test_a_name_that_is_not_a_column_is_refused_as_keywords_refuse_it():
    from booking.services.bookings import _instance

    with pytest.raises(TypeError):
        Booking(pool=None, experiment_slug="pend00")
    with pytest.raises(TypeError, match="Booking has no column experiment_slug, pool"):
        _instance(Booking, {"pool": None, "experiment_slug": "pend00", "reference": "ABC234"})


def test_a_booking_built_by_column_gets_a_new_id():
    from booking.services.bookings import _instance

    ids = {_instance(Booking, {"reference": "ABC234"}).pk for _ in range(3)}
    assert len(ids) == 3 and all(isinstance(i, uuid.UUID) and i.version == 4 for i in ids)
