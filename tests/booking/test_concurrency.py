"""No double booking under racing clients, on whichever backend the suite runs (SQLite or
PostgreSQL: the test command runs the suite on both)."""

import random
import sqlite3
import threading
from datetime import timedelta
from itertools import combinations

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.utils import timezone

from booking.models import Booking, BookingStatus
from tests.conftest import client_for
from tests.factories import make_booking, make_user

THREADS = 16
ATTEMPTS = 4


def _race(lab, intervals_for) -> list[tuple[int, dict]]:
    users = [make_user(f"racer{i}") for i in range(THREADS)]
    lab.group.members.add(*users)
    lab.pool.max_bookings = 100
    lab.pool.max_duration = 3600
    lab.pool.save()
    barrier = threading.Barrier(THREADS)
    results: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        try:
            client = client_for(users[index])
            connections.close_all()  # back to the pool while waiting for the others
            barrier.wait(timeout=30)
            for body in intervals_for(index):
                response = client.post("/api/v1/bookings/", body, content_type="application/json")
                with lock:
                    results.append((response.status_code, response.json()))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    return results


def _assert_no_overlap() -> list[Booking]:
    active = list(Booking.objects.filter(status__in=[BookingStatus.BOOKED, BookingStatus.STARTED]))
    for a, b in combinations(active, 2):
        if a.experiment_id == b.experiment_id:
            assert not (a.start < b.end and b.start < a.end), (a, b)
    return active


@pytest.mark.django_db(transaction=True)
def test_racing_clients_on_one_experiment_never_double_book(lab):
    base = timezone.now() + timedelta(minutes=30)
    rng = random.Random(7)

    def intervals(index: int) -> list[dict]:
        out = []
        for _ in range(ATTEMPTS):
            start = base + timedelta(minutes=rng.randrange(0, 90))
            end = start + timedelta(minutes=rng.randrange(5, 25))
            out.append(
                {
                    "pool": "pendulums",
                    "experiment": "pend00",
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                }
            )
        return out

    results = _race(lab, intervals)
    statuses = [status for status, _ in results]
    assert len(statuses) == THREADS * ATTEMPTS
    assert set(statuses) <= {201, 409}, [
        body for status, body in results if status not in (201, 409)
    ]
    assert 201 in statuses and 409 in statuses
    assert all(body["code"] == "slot_taken" for status, body in results if status == 409)
    active = _assert_no_overlap()
    confirmed = {body["id"] for status, body in results if status == 201}
    assert {str(b.id) for b in active} == confirmed


@pytest.mark.django_db(transaction=True)
def test_racing_any_experiment_bookings_fill_the_pool_without_overlap(lab):
    start = timezone.now() + timedelta(minutes=30)
    body = {
        "pool": "pendulums",
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=10)).isoformat(),
    }
    results = _race(lab, lambda index: [body])
    statuses = sorted(status for status, _ in results)
    # two public experiments, so exactly two of the racers win
    assert statuses.count(201) == 2 and statuses.count(409) == THREADS - 2
    active = _assert_no_overlap()
    assert {b.experiment.slug for b in active} == {"pend00", "pend01"}


@pytest.mark.django_db(transaction=True)
def test_one_user_racing_themselves_cannot_pass_max_bookings(lab):
    lab.pool.max_bookings = 2
    lab.pool.save()
    barrier = threading.Barrier(8)
    statuses: list[int] = []
    base = timezone.now() + timedelta(hours=1)

    def worker(index: int) -> None:
        try:
            client = client_for(lab.student)
            start = base + timedelta(minutes=20 * index)
            body = {
                "pool": "pendulums",
                "experiment": "pend00",
                "start": start.isoformat(),
                "end": (start + timedelta(minutes=10)).isoformat(),
            }
            connections.close_all()
            barrier.wait(timeout=30)
            statuses.append(
                client.post("/api/v1/bookings/", body, content_type="application/json").status_code
            )
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [201, 201] + [422] * 6
    assert Booking.objects.filter(user=lab.student).count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_backend_itself_guards_against_overlap(lab):
    """PostgreSQL: the exclusion constraint refuses an overlap even past the service.
    SQLite: a second writer cannot begin while one IMMEDIATE transaction holds the lock."""
    start = timezone.now() + timedelta(hours=1)
    make_booking(lab.student, lab.pool, lab.pend00, start, minutes=30)
    if connection.vendor == "postgresql":
        with pytest.raises(IntegrityError, match="booking_no_overlap"), transaction.atomic():
            make_booking(lab.student2, lab.pool, lab.pend00, start + timedelta(minutes=10))
        # cancelled bookings do not take part
        make_booking(lab.student2, lab.pool, lab.pend00, start, status=BookingStatus.CANCELLED)
        return
    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    with transaction.atomic():
        Booking.objects.filter(pk__isnull=True).update(status="booked")  # hold the write lock
        other = sqlite3.connect(connection.settings_dict["NAME"], timeout=0, isolation_level=None)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        finally:
            other.close()


def _wait_for_a_writer_to_wait_for_its_turn(experiment) -> None:
    """PostgreSQL: until another connection waits for a turn on the experiment's slots (the
    whole experiment's lock or one of its spans', booking/sql.py). (A SQLite writer waits
    inside the library's busy handler, which nothing outside can see.)"""
    if connection.vendor != "postgresql":
        return
    from booking.sql import SLOTS_LOCK_CLASS
    from tests.support.processes import wait_until

    waiting = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND ((objsubid = 2 AND classid = %s AND objid = %s) OR (objsubid = 1 AND classid = %s))"
    )

    def waits() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(waiting, [SLOTS_LOCK_CLASS, experiment.pk, experiment.pk])
            return cursor.fetchone()[0] == 1

    wait_until(waits, timeout=10, what="a writer to wait for its turn on the experiment's slots")


def _request_beside_an_open_transaction(hold, request, *, waits_for=None) -> dict:
    """Runs `hold()` in a transaction on one thread and keeps it open; then `request()` on
    another. With `waits_for` (an experiment) the request must wait for the open transaction
    (on PostgreSQL, for a turn on the experiment's slots), which then commits; without, it
    must finish while the transaction is still open. `waits_for` may instead be a function
    that returns once the request waits. Returns what `request()` returned (a dict)."""
    held, release = threading.Event(), threading.Event()
    outcome: dict = {}

    def holder() -> None:
        try:
            with transaction.atomic():
                hold()
                held.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    def racer() -> None:
        try:
            outcome.update(request())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=holder), threading.Thread(target=racer)]
    threads[0].start()
    try:
        assert held.wait(timeout=30)
        threads[1].start()
        if waits_for is not None:
            if callable(waits_for):
                waits_for()
            else:
                _wait_for_a_writer_to_wait_for_its_turn(waits_for)
            assert not outcome  # it cannot finish while the first transaction is open
        else:
            threads[1].join(timeout=15)
            assert outcome, "the request waited for the open transaction"
    finally:
        release.set()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    return outcome


def _book_in_the_service(lab, start, end):
    """Books pend00 for student2 through the service, inside the caller's transaction."""
    from booking.services.bookings import booking_create

    def book() -> None:
        booking_create(
            user=lab.student2,
            pool_slug="pendulums",
            experiment_slug="pend00",
            start=start,
            end=end,
            now=timezone.now(),
        )

    return book


def _book_through_the_api(lab, start, end):
    """Books pend00 for the student through the API; returns the status and body."""

    def book():
        body = {
            "pool": "pendulums",
            "experiment": "pend00",
            "start": start.isoformat(),
            "end": end.isoformat(),
        }
        return _answer(
            client_for(lab.student).post("/api/v1/bookings/", body, content_type="application/json")
        )

    return book


def _extend_through_the_api(lab, booking):
    """Extends the student's booking by the pool's step through the API; returns the status
    and body."""

    def extend():
        return _answer(
            client_for(lab.student).post(
                f"/api/v1/bookings/{booking.pk}/extend/", {}, content_type="application/json"
            )
        )

    return extend


def _answer(response) -> dict:
    return {"status": response.status_code, "body": response.json()}


def _wait_for_a_lock_wait(locktype: str = "transactionid"):
    """A `waits_for` for the helper above. PostgreSQL: until another connection waits for a
    lock of the type (transactionid: a row's lock, until its writer's transaction ends)."""

    def wait() -> None:
        if connection.vendor != "postgresql":
            return
        from tests.support.processes import wait_until

        def waits() -> bool:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = %s AND NOT granted",
                    [locktype],
                )
                return cursor.fetchone()[0] == 1

        wait_until(waits, timeout=10, what=f"a connection to wait for a {locktype} lock")

    return wait


def _take_out_of_service(experiment, *, expect: tuple[int, int]):
    """Takes the experiment out of service from now on; checks (moved, cancelled)."""
    from workflows.lab_actions import experiment_out_of_service_action

    def act() -> dict:
        result = experiment_out_of_service_action(
            experiment=experiment,
            reason="Pendulum arm bent",
            start=timezone.now(),
            end=None,
            by=None,
            now=timezone.now(),
        )
        assert (result.moved, result.cancelled) == expect
        return {"moved": result.moved, "cancelled": result.cancelled}

    return act


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("first", "second"),
    [((0, 30), (10, 40)), ((0, 300), (120, 150)), ((0, 30), (-200, 100))],
    ids=["short-short", "long-then-short", "short-then-long"],
)
def test_a_booking_racing_an_uncommitted_overlap_waits_for_it_then_gets_409(lab, first, second):
    """Two overlapping bookings of one experiment written at the same moment (minutes from a
    base time; five hours is longer than the spans a write locks, booking/sql.py). Left to the
    exclusion constraint alone, each would wait for the other's transaction until PostgreSQL
    broke the deadlock after a second with an error (a 503). Here the later one waits for its
    turn, before its row exists, and then gets a 409 at once."""
    lab.pool.max_duration = 6 * 3600
    lab.pool.save()
    base = (timezone.now() + timedelta(hours=5)).replace(microsecond=0)
    first_booking, second_booking = (
        (base + timedelta(minutes=a), base + timedelta(minutes=b)) for a, b in (first, second)
    )
    outcome = _request_beside_an_open_transaction(
        _book_in_the_service(lab, *first_booking),
        _book_through_the_api(lab, *second_booking),
        waits_for=lab.pend00,
    )
    assert outcome["status"] == 409 and outcome["body"]["code"] == "slot_taken", outcome
    assert [b.user for b in _assert_no_overlap()] == [lab.student2]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("rule", ["max_bookings", "quota_exceeded"])
def test_a_booking_waiting_for_the_users_own_open_booking_counts_it(lab, rule):
    """The student's first booking (pend01) is inserted but not committed when their second
    (pend00, an hour later) arrives. The second waits for the user's lock, which its catalogue
    read takes; its read of the user's bookings, sent to PostgreSQL in the same round trip
    (booking_create's pipeline), runs once the lock is granted, in a snapshot of its own: it
    sees the first booking and refuses the second. Read in the catalogue read's snapshot, it
    would miss it, and the student would hold more than the pool allows."""
    if rule == "max_bookings":
        lab.pool.max_bookings = 1
    else:
        lab.pool.quota_period, lab.pool.quota_limit = 86400, 20 * 60
    lab.pool.save()
    start = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)

    def first() -> None:
        from booking.services.bookings import booking_create

        booking_create(
            user=lab.student,
            pool_slug="pendulums",
            experiment_slug="pend01",
            start=start,
            end=start + timedelta(minutes=15),
            now=timezone.now(),
        )

    # Logged in first: a login writes the user's row, which the open transaction locks.
    client = client_for(lab.student)
    second = start + timedelta(hours=1)
    body = {"pool": "pendulums", "experiment": "pend00"}
    body |= {"start": second.isoformat(), "end": (second + timedelta(minutes=15)).isoformat()}
    outcome = _request_beside_an_open_transaction(
        first,
        lambda: _answer(client.post("/api/v1/bookings/", body, content_type="application/json")),
        waits_for=_wait_for_a_lock_wait(),
    )
    assert outcome["status"] == 422 and outcome["body"]["code"] == rule, outcome
    assert [b.experiment for b in _assert_no_overlap()] == [lab.pend01]


@pytest.mark.django_db(transaction=True)
def test_bookings_of_one_experiment_for_other_times_do_not_wait_for_each_other(lab):
    """On PostgreSQL the turn is on the time a write covers: while an uncommitted booking of
    pend00 holds its half hour, a booking of pend00 for the next half hour (meeting it at a
    span boundary) goes through at once. On SQLite every writer waits for the one write lock."""
    start = (timezone.now() + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    middle, end = start + timedelta(minutes=30), start + timedelta(minutes=60)
    hold = _book_in_the_service(lab, start, middle)
    request = _book_through_the_api(lab, middle, end)
    waits = connection.vendor != "postgresql"
    outcome = _request_beside_an_open_transaction(
        hold, request, waits_for=lab.pend00 if waits else None
    )
    assert outcome["status"] == 201, outcome
    assert sorted(b.start for b in _assert_no_overlap()) == [start, middle]


@pytest.mark.django_db(transaction=True)
def test_an_extension_waits_for_the_experiments_turn(lab):
    """An extension writes the experiment's slots too, so it takes the same turn as a new
    booking (no deadlock between an extension and an overlapping insert)."""
    from booking.sql import EXPERIMENT_TURN_SQL

    running = make_booking(lab.student, lab.pool, lab.pend00, timezone.now() - timedelta(minutes=2))

    def hold_the_turn() -> None:  # the turn on PostgreSQL, the write lock on SQLite
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(EXPERIMENT_TURN_SQL, [lab.pend00.pk])
            else:
                Booking.objects.filter(pk__isnull=True).update(status="booked")

    outcome = _request_beside_an_open_transaction(
        hold_the_turn, _extend_through_the_api(lab, running), waits_for=lab.pend00
    )
    assert outcome["status"] == 200, outcome
    running.refresh_from_db()
    assert running.end > running.booked_end


@pytest.mark.django_db(transaction=True)
def test_an_extension_into_an_uncommitted_booking_waits_for_its_turn_then_is_blocked(lab):
    """The extension's read check cannot see the uncommitted booking of the time it extends
    into; it waits for the turn on those slots, then meets the committed row."""
    running = make_booking(lab.student, lab.pool, lab.pend00, timezone.now() - timedelta(minutes=2))
    after = running.end + timedelta(minutes=10)

    outcome = _request_beside_an_open_transaction(
        _book_in_the_service(lab, running.end, after),
        _extend_through_the_api(lab, running),
        waits_for=lab.pend00,
    )
    assert outcome["status"] == 409 and outcome["body"]["code"] == "extension_blocked", outcome
    assert Booking.objects.get(pk=running.pk).end == running.end
    _assert_no_overlap()


@pytest.mark.django_db(transaction=True)
def test_moving_a_booking_out_of_service_waits_for_the_turn_on_the_target(lab, settings):
    """Taking pend00 out of service moves its booking to pend01, which the read check sees
    free while a booking of pend01 for an overlapping time is written but not committed. The
    move waits for the turn on pend01's slots (without it, each would wait for the other's row
    until PostgreSQL broke the deadlock), then meets the committed row and falls back to
    cancelling."""

    settings.RELAY_PUSH_IN_PROCESS = False  # no HTTP pushes to the absent test relays
    start = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)
    moving = make_booking(lab.student, lab.pool, lab.pend00, start, 30)

    def book_pend01() -> None:
        from booking.services.bookings import booking_create

        booking_create(
            user=lab.student2,
            pool_slug="pendulums",
            experiment_slug="pend01",
            start=start + timedelta(minutes=10),
            end=start + timedelta(minutes=40),
            now=timezone.now(),
        )

    outcome = _request_beside_an_open_transaction(
        book_pend01, _take_out_of_service(lab.pend00, expect=(0, 1)), waits_for=lab.pend01
    )
    assert outcome == {"moved": 0, "cancelled": 1}
    moved = Booking.objects.get(pk=moving.pk)
    assert (moved.experiment, moved.status) == (lab.pend00, BookingStatus.CANCELLED)
    _assert_no_overlap()


@pytest.mark.django_db(transaction=True)
def test_a_session_starting_does_not_hold_up_bookings_of_its_pool(lab, settings):
    """A session start locks its booking's row only. Locking the pool's and the experiment's
    rows too (`FOR UPDATE`) made every booking of the pool wait at its commit, where its
    deferred foreign keys take `FOR KEY SHARE` on those rows, until the session's transaction
    ended. On SQLite every writer waits for the one write lock."""
    from sessions_app.models import Session
    from workflows.actions import session_start_action

    settings.RELAY_PUSH_IN_PROCESS = False
    running = make_booking(lab.student, lab.pool, lab.pend00, timezone.now() - timedelta(minutes=2))
    start = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)

    def start_the_session() -> None:
        session_start_action(booking=running, by=lab.student, now=timezone.now())

    def book_in_the_pool() -> dict:
        body = {
            "pool": "pendulums",
            "experiment": "pend00",
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=30)).isoformat(),
        }
        client = client_for(lab.student2)
        return _answer(client.post("/api/v1/bookings/", body, content_type="application/json"))

    waits = connection.vendor != "postgresql"
    outcome = _request_beside_an_open_transaction(
        start_the_session, book_in_the_pool, waits_for=lab.pend00 if waits else None
    )
    assert outcome["status"] == 201, outcome
    assert Session.objects.filter(booking=running).exists()


@pytest.mark.django_db(transaction=True)
def test_a_session_start_waiting_for_staff_to_cancel_its_booking_is_refused(lab, settings):
    """Staff take pend00 out of service while its running booking's session is starting: the
    cancellation holds the booking's row, the start waits for it, then reads the booking as
    cancelled and refuses (no session, no tokens)."""
    from booking.errors import ApiError
    from sessions_app.models import Session
    from workflows.actions import session_start_action

    settings.RELAY_PUSH_IN_PROCESS = False
    running = make_booking(lab.student, lab.pool, lab.pend00, timezone.now() - timedelta(minutes=2))

    def start_the_session() -> dict:
        try:
            session_start_action(booking=running, by=lab.student, now=timezone.now())
        except ApiError as error:
            return {"refused": error.code}
        return {"refused": None}

    outcome = _request_beside_an_open_transaction(
        _take_out_of_service(lab.pend00, expect=(0, 1)),
        start_the_session,
        waits_for=_wait_for_a_lock_wait(),
    )
    assert outcome == {"refused": "booking_over"}
    assert not Session.objects.filter(booking=running).exists()
    assert Booking.objects.get(pk=running.pk).status == BookingStatus.CANCELLED


@pytest.mark.django_db(transaction=True)
def test_a_booking_racing_an_action_taking_its_experiment_out_of_service_is_refused(lab, settings):
    """The booking's catalogue read sees pend00 in service while the action that takes it out
    is not committed yet. Its insert locks pend00's row FOR SHARE, waits for the action, then
    finds pend00 out of service: 422 experiment_unavailable, nothing written (before, the
    booking committed after the action, on an experiment out of service)."""
    settings.RELAY_PUSH_IN_PROCESS = False
    start = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)
    outcome = _request_beside_an_open_transaction(
        _take_out_of_service(lab.pend00, expect=(0, 0)),
        _book_through_the_api(lab, start, start + timedelta(minutes=30)),
        waits_for=_wait_for_a_lock_wait(),
    )
    assert outcome["status"] == 422, outcome
    assert outcome["body"]["code"] == "experiment_unavailable", outcome
    assert not Booking.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_action_taking_an_experiment_out_of_service_waits_for_a_booking_being_made(
    lab, settings
):
    """A booking of pend00 is inserted but not committed when staff take pend00 out of
    service. The action waits for the booking (its FOR SHARE lock on pend00's row), then finds
    it and moves it to pend01 (before, the action did not see it, and it stayed on pend00)."""
    settings.RELAY_PUSH_IN_PROCESS = False
    start = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)
    outcome = _request_beside_an_open_transaction(
        _book_in_the_service(lab, start, start + timedelta(minutes=30)),
        _take_out_of_service(lab.pend00, expect=(1, 0)),
        waits_for=_wait_for_a_lock_wait(),
    )
    assert outcome == {"moved": 1, "cancelled": 0}
    [booking] = _assert_no_overlap()
    assert (booking.user, booking.experiment) == (lab.student2, lab.pend01)


@pytest.mark.django_db(transaction=True)
def test_two_experiments_taken_out_of_service_at_once_take_turns(lab, settings):
    """Staff take pend00 out of service (its booking moves to pend01) while others take
    pend01 out. The second action waits for the first (the service turn), then finds the
    moved booking too and cancels both (pend00 is out of service, dev00 not public). Without
    the turn it would miss the moved booking, left on an experiment out of service, or each
    action could wait for the other's rows."""
    settings.RELAY_PUSH_IN_PROCESS = False
    start = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)
    on_pend00 = make_booking(lab.student, lab.pool, lab.pend00, start, 30)
    on_pend01 = make_booking(lab.student2, lab.pool, lab.pend01, start + timedelta(hours=1), 30)
    outcome = _request_beside_an_open_transaction(
        _take_out_of_service(lab.pend00, expect=(1, 0)),
        _take_out_of_service(lab.pend01, expect=(0, 2)),
        waits_for=_wait_for_a_lock_wait("advisory"),
    )
    assert outcome == {"moved": 0, "cancelled": 2}
    for booking in (on_pend00, on_pend01):
        booking.refresh_from_db()
        assert booking.status == BookingStatus.CANCELLED
    assert not _assert_no_overlap()


@pytest.mark.django_db(transaction=True)
def test_a_booking_of_any_experiment_that_meets_one_going_out_of_service_takes_another(
    lab, settings, monkeypatch
):
    """A booking of "any experiment of the pool" chose pend00 (the choice among the free ones,
    random in service, made to pick pend00 here) as it was being taken out of service. Its
    insert waits for the action, finds pend00 out of service, and the booking is made again
    from a fresh read: on pend01."""
    from booking.services import bookings

    settings.RELAY_PUSH_IN_PROCESS = False
    monkeypatch.setattr(bookings.random, "choice", lambda free: min(free, key=lambda e: e.slug))
    start = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)
    body = {
        "pool": "pendulums",
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=30)).isoformat(),
    }

    def book_any() -> dict:
        response = client_for(lab.student).post(
            "/api/v1/bookings/", body, content_type="application/json"
        )
        return _answer(response)

    outcome = _request_beside_an_open_transaction(
        _take_out_of_service(lab.pend00, expect=(0, 0)),
        book_any,
        waits_for=_wait_for_a_lock_wait(),
    )
    assert outcome["status"] == 201, outcome
    assert outcome["body"]["experiment"] == "pend01", outcome


@pytest.mark.django_db(transaction=True)
def test_a_student_booking_while_staff_move_their_other_booking_waits_without_a_deadlock(
    lab, settings
):
    """Staff take pend00 out of service, moving the student's booking and writing the student
    a message (its foreign key is checked at the commit, FOR KEY SHARE on the student's row).
    Meanwhile the student books pend00 again: the booking holds the student's row and waits
    for pend00's. Locked FOR UPDATE, the student's row would hold up the action's commit: a
    deadlock, broken after a second by failing one of them. FOR NO KEY UPDATE lets the action
    commit; the booking then finds pend00 out of service."""
    settings.RELAY_PUSH_IN_PROCESS = False
    start = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)
    moving = make_booking(lab.student, lab.pool, lab.pend00, start, 30)
    later = start + timedelta(hours=1)
    outcome = _request_beside_an_open_transaction(
        _take_out_of_service(lab.pend00, expect=(1, 0)),
        _book_through_the_api(lab, later, later + timedelta(minutes=30)),
        waits_for=_wait_for_a_lock_wait(),
    )
    assert outcome["status"] == 422, outcome
    assert outcome["body"]["code"] == "experiment_unavailable", outcome
    moving.refresh_from_db()
    assert (moving.experiment, moving.status) == (lab.pend01, BookingStatus.BOOKED)
