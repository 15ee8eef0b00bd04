"""The booking API's rules again, each request committing as in production: no test
transaction around it. On PostgreSQL booking_create then sends its statements in a pipeline
(booking/services/bookings.py), which tests inside a test transaction never reach; on SQLite
these are its IMMEDIATE transactions as production runs them."""

import os
import socket
import struct
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from psycopg import pq

from booking.errors import ApiError
from booking.models import Booking
from booking.services import bookings
from config.settings.env import PREPARE_THRESHOLD
from tests.booking import test_api_bookings as api

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("frozen")]

# Every test of the API's booking rules and refusals, collected here a second time.
test_it_books_an_experiment_and_shows_it = api.test_it_books_an_experiment_and_shows_it
test_it_picks_a_free_experiment_when_none_is_named = (
    api.test_it_picks_a_free_experiment_when_none_is_named
)
test_it_refuses_any_experiment_when_all_are_taken = (
    api.test_it_refuses_any_experiment_when_all_are_taken
)
test_it_rejects_an_overlapping_booking = api.test_it_rejects_an_overlapping_booking
test_a_cancelled_booking_frees_the_slot = api.test_a_cancelled_booking_frees_the_slot
test_it_applies_the_pool_policy = api.test_it_applies_the_pool_policy
test_it_refuses_a_non_member = api.test_it_refuses_a_non_member
test_it_refuses_outside_the_allowed_windows = api.test_it_refuses_outside_the_allowed_windows
test_it_refuses_a_denied_window = api.test_it_refuses_a_denied_window
test_it_limits_current_and_future_bookings = api.test_it_limits_current_and_future_bookings
test_a_booking_of_ones_own_that_overlaps_the_request_counts_once = (
    api.test_a_booking_of_ones_own_that_overlaps_the_request_counts_once
)
test_quota_counts_a_rolling_period_and_refunds_early_cancellation = (
    api.test_quota_counts_a_rolling_period_and_refunds_early_cancellation
)
test_a_booking_cancelled_while_running_counts_up_to_the_cancellation = (
    api.test_a_booking_cancelled_while_running_counts_up_to_the_cancellation
)
test_it_refuses_an_unavailable_or_hidden_experiment = (
    api.test_it_refuses_an_unavailable_or_hidden_experiment
)
test_a_maintainer_may_book_their_unavailable_or_hidden_experiment = (
    api.test_a_maintainer_may_book_their_unavailable_or_hidden_experiment
)
test_bad_input_gets_a_code_and_writes_nothing = api.test_bad_input_gets_a_code_and_writes_nothing


def test_outside_a_transaction_bookings_take_the_pipeline_on_postgresql(lab):
    assert bookings._in_pipeline() is (connection.vendor == "postgresql")
    with transaction.atomic():
        assert bookings._in_pipeline() is False  # a caller's transaction: one statement each


def _book(lab, user, minutes: int, experiment: str | None = "pend00", length: int = 10):
    start = (timezone.now() + timedelta(minutes=minutes)).replace(microsecond=0)
    return bookings.booking_create(
        user=user,
        pool_slug="pendulums",
        experiment_slug=experiment,
        start=start,
        end=start + timedelta(minutes=length),
        now=timezone.now(),
    )


def test_every_outcome_leaves_the_connection_idle_with_its_prepared_statements(lab):
    """Bookings, then refusals from each stage (the catalogue read, the rules on the bookings
    around; the database refusing the insert is in test_concurrency.py), then a booking, on
    one connection: after each the connection is out of any transaction (and, on PostgreSQL,
    out of pipeline mode). The refusals keep the connection's prepared statements: a rollback
    that made psycopg forget them (DEALLOCATE ALL) would have PostgreSQL parse and plan each
    statement again on its next runs."""
    lab.pool.max_bookings = 100
    lab.pool.save()
    refusals = {
        "invalid": lambda n: bookings.booking_create(
            user=lab.student,
            pool_slug="nowhere",
            experiment_slug=None,
            start=timezone.now() + timedelta(hours=1),
            end=timezone.now() + timedelta(hours=2),
            now=timezone.now(),
        ),
        "not_member": lambda n: _book(lab, lab.outsider, 60 * n),
        "too_long": lambda n: _book(lab, lab.student, 60 * n, length=120),
        "slot_taken": lambda n: _book(lab, lab.student2, 60 * (n - 1)),
    }

    def idle(after: str) -> None:
        if connection.vendor == "postgresql":
            pgconn = connection.connection.pgconn
            assert pgconn.transaction_status == pq.TransactionStatus.IDLE, after
            assert pgconn.pipeline_status == pq.PipelineStatus.OFF, after
        else:
            assert not connection.connection.in_transaction, after

    runs = """SELECT sum(generic_plans + custom_plans) FROM pg_prepared_statements
              WHERE statement LIKE %s"""
    kinds = ("%FOR NO KEY UPDATE%", "%AS span%e.slug%", "%INSERT INTO booking%")

    def counts() -> list:
        if connection.vendor != "postgresql":
            return []
        with connection.cursor() as cursor:
            return [cursor.execute(runs, [kind]).fetchone()[0] for kind in kinds]

    made = [_book(lab, lab.student, 60 * n) for n in range(1, PREPARE_THRESHOLD + 2)]
    idle("bookings")
    before = counts()
    n = PREPARE_THRESHOLD + 2
    for code, refused in refusals.items():
        with pytest.raises(ApiError) as error:
            refused(n)
        assert error.value.code == code
        idle(code)
    made.append(_book(lab, lab.student, 60 * n))
    idle("a booking after the refusals")
    assert sorted(Booking.objects.values_list("pk", flat=True)) == sorted(b.pk for b in made)
    if connection.vendor == "postgresql":
        # Each statement prepared before the refusals, run as such again since: the catalogue
        # read and the bookings around (sent with it) by every request naming pendulums and
        # pend00 (the unknown pool's request names no experiment: statements of their own),
        # the insert by the last booking only.
        assert all(before), before
        assert counts() == [before[0] + 4, before[1] + 4, before[2] + 1]


def test_a_reference_already_in_use_is_drawn_again(lab, monkeypatch):
    """The database refuses a second booking with the same reference (SQLite fails the
    insert; PostgreSQL's inserts nothing, booking/sql.py): booking_create tries again with a
    new one, and nothing of the first try remains."""
    first = _book(lab, lab.student, 60)
    drawn = iter([first.reference, "ZZZZZ2"])
    monkeypatch.setattr(bookings.rules, "new_reference", lambda: next(drawn))
    second = _book(lab, lab.student2, 120)
    assert second.reference == "ZZZZZ2"
    stored = sorted(Booking.objects.values_list("reference", "user__username"))
    assert stored == sorted([(first.reference, "student"), ("ZZZZZ2", "student2")])


def test_on_postgresql_the_booking_statements_keep_their_generic_plans(lab):
    """With a history in the table's statistics, PostgreSQL would plan the read of the bookings
    around anew for each booking (a custom plan looks cheaper for a booking's times than the
    generic one): booking_create's transaction keeps the plans made once. Each booking made
    after the statement is prepared runs it with the generic plan, never a custom one."""
    if connection.vendor != "postgresql":
        assert not bookings._in_pipeline()  # SQLite prepares nothing: no plans to keep
        return
    past = timezone.now() - timedelta(days=400)
    Booking.objects.bulk_create(
        Booking(
            reference=f"H{n:05d}",
            user=lab.student,
            pool=lab.pool,
            experiment=lab.pend01,
            start=past + timedelta(hours=n),
            end=past + timedelta(hours=n, minutes=30),
            booked_end=past + timedelta(hours=n, minutes=30),
            status="ended",
            created_at=past,
        )
        for n in range(3000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE booking_booking")
    lab.pool.max_bookings = 100
    lab.pool.save()
    runs = PREPARE_THRESHOLD + 4
    for n in range(1, runs + 1):
        _book(lab, lab.student, 60 * n)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE %s",
            ["%AS span%e.slug%"],
        )
        plans = cursor.fetchall()
    assert len(plans) == 1, plans
    generic, custom = plans[0]
    assert custom == 0 and generic >= runs - PREPARE_THRESHOLD, plans


def _segments_sent() -> int:
    """Data segments the database connection's TCP socket has sent (Linux's TCP_INFO,
    tcpi_data_segs_out). libpq sets TCP_NODELAY, so each small write leaves as one."""
    with socket.socket(fileno=os.dup(connection.connection.pgconn.socket)) as sock:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 160)
    return struct.unpack_from("I", info, 156)[0]


def test_on_postgresql_each_round_trip_of_a_booking_is_written_at_once(lab, monkeypatch):
    """The statements of each round trip go to PostgreSQL in one write, not one write each
    (config/postgresql/base.py, send_together): the first round trip's four statements with a
    flush request, then the insert with COMMIT and the pipeline's sync. So two writes per
    booking, against nine when psycopg writes each statement and a flush request after the
    sync.
    (The test settings send the confirmation inline, with statements of its own: not
    counted here.)"""
    if connection.vendor != "postgresql":
        assert not bookings._in_pipeline()  # SQLite: no socket, no pipeline
        return
    confirmed = []
    monkeypatch.setattr(bookings, "booking_confirmation_enqueue", confirmed.append)
    lab.pool.max_bookings = 100
    lab.pool.save()
    _book(lab, lab.student, 60)  # the connection opened, the statements' first runs
    for n in range(2, PREPARE_THRESHOLD + 4):  # before and after psycopg prepares them
        before = _segments_sent()
        booking = _book(lab, lab.student, 60 * n)
        assert _segments_sent() - before == 2, n
        assert Booking.objects.get(pk=booking.pk).reference == booking.reference
    assert len(confirmed) == PREPARE_THRESHOLD + 3
