"""Django's PostgreSQL backend as config/postgresql changes it (the pool's check, the
timestamp loader, the rollback), against a real server.

The test command always starts a private PostgreSQL server (TEST_POSTGRES_URL), so this runs
in the SQLite pass too.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import pq

from tests.support.processes import wait_until


def _last_query(watcher, pid: int) -> str | None:
    """The last statement the server backend `pid` ran (None once it is gone)."""
    row = watcher.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
    return None if row is None else row[0]


def _terminate(watcher, pid: int) -> None:
    """End the server backend `pid`, as a database restart does, and wait until it is gone."""
    watcher.execute("SELECT pg_terminate_backend(%s)", [pid])
    wait_until(
        lambda: (
            watcher.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
            is None
        ),
        timeout=10,
        what="the terminated backend to go",
    )


def test_the_pool_check_makes_no_round_trip_yet_finds_a_dead_connection():
    from config.postgresql.base import check_connection

    url = os.environ["TEST_POSTGRES_URL"]
    with (
        psycopg.connect(url, autocommit=True) as watcher,
        psycopg.connect(url, autocommit=True) as pooled,
    ):
        pid = pooled.info.backend_pid
        pooled.execute("SELECT 'the last statement'")
        check_connection(pooled)
        assert _last_query(watcher, pid) == "SELECT 'the last statement'"

        _terminate(watcher, pid)
        with pytest.raises(psycopg.OperationalError):
            check_connection(pooled)


# Instants the loader must read exactly as Django's own: microseconds, before 1970, the
# first and last years Python has, another offset, NULL.
INSTANTS = [
    "2026-11-24 09:30:00.123456+00",
    "1969-07-20 20:17:40.5+00",
    "0001-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
    "2026-03-29 01:30:00+02",
    None,
]


@contextmanager
def _postgres(pool_max: int = 0, **settings: object) -> Iterator:
    """Our backend on the test server under an alias of its own (in the SQLite pass too);
    contrib.postgres looks each new connection up by its alias. With `pool_max`, pooled
    and checked as the web processes' connections are."""
    from django.db import connections

    from config.postgresql.base import DatabaseWrapper
    from config.settings.env import database_from_url

    settings_dict = database_from_url(os.environ["TEST_POSTGRES_URL"], pool_max=pool_max)
    if not pool_max:
        settings_dict["CONN_HEALTH_CHECKS"] = False
    settings_dict |= {"TIME_ZONE": None, "ATOMIC_REQUESTS": False}
    settings_dict |= {"AUTOCOMMIT": True, "TEST": {}} | settings
    alias = f"timestamps-{settings_dict['TIME_ZONE']}-{pool_max}"
    wrapper = DatabaseWrapper(settings_dict, alias)
    connections[alias] = wrapper
    try:
        yield wrapper
    finally:
        wrapper.close()
        wrapper.close_pool()
        del connections[alias]


def _read(cursor, instants: list = INSTANTS) -> list:
    values = ", ".join(["%s::timestamptz"] * len(instants))
    cursor.execute(f"SELECT {values}", instants)  # noqa: S608 - placeholders only
    return list(cursor.fetchone())


def test_timestamps_are_read_by_psycopgs_loader_with_the_values_djangos_gives(db):
    from datetime import UTC

    from django.db.backends.postgresql.psycopg_any import register_tzloader
    from psycopg import adapters, pq

    from config.postgresql.base import TIMESTAMPTZ_OID, UtcTimestamptzLoader

    with _postgres() as wrapper:
        with wrapper.cursor() as cursor:
            loader = wrapper.connection.adapters.get_loader(TIMESTAMPTZ_OID, pq.Format.TEXT)
            assert loader is UtcTimestamptzLoader
            # Each value goes straight to psycopg's loader, no Python of ours or Django's.
            load = UtcTimestamptzLoader(TIMESTAMPTZ_OID, wrapper.connection).load
            assert type(load.__self__) is adapters.get_loader(TIMESTAMPTZ_OID, pq.Format.TEXT)
            ours = _read(cursor)
        with wrapper.cursor() as cursor:
            register_tzloader(UTC, cursor.cursor)  # Django's own loader, on this cursor only
            djangos = _read(cursor)
    assert ours == djangos
    assert [v.tzinfo for v in ours[:-1]] == [UTC] * (len(INSTANTS) - 1)
    assert [v.tzinfo for v in djangos[:-1]] == [UTC] * (len(INSTANTS) - 1)
    assert ours[1].isoformat() == "1969-07-20T20:17:40.500000+00:00"
    assert ours[4].isoformat() == "2026-03-28T23:30:00+00:00"

    from django.db import connection

    if connection.vendor == "postgresql":  # the suite's own database, in that pass
        connection.ensure_connection()
        in_use = connection.connection.adapters.get_loader(TIMESTAMPTZ_OID, pq.Format.TEXT)
        assert in_use is UtcTimestamptzLoader


def test_a_database_time_zone_keeps_djangos_loader(db):
    from zoneinfo import ZoneInfo

    from psycopg import pq

    from config.postgresql.base import TIMESTAMPTZ_OID, UtcTimestamptzLoader

    with _postgres(TIME_ZONE="Europe/Paris") as wrapper, wrapper.cursor() as cursor:
        loader = wrapper.connection.adapters.get_loader(TIMESTAMPTZ_OID, pq.Format.TEXT)
        assert loader is not UtcTimestamptzLoader
        assert loader.timezone == ZoneInfo("Europe/Paris")
        values = _read(cursor, INSTANTS[:2])
    assert [v.isoformat() for v in values] == [
        "2026-11-24T10:30:00.123456+01:00",
        "1969-07-20T21:17:40.500000+01:00",
    ]


class _Refused(Exception):
    pass


def test_a_rollback_keeps_the_connections_prepared_statements(db):
    from django.db import transaction

    from config.settings.env import PREPARE_THRESHOLD

    statement = "SELECT count(*) FROM scratch WHERE n > %s"
    plans = (
        "SELECT generic_plans + custom_plans FROM pg_prepared_statements"
        " WHERE statement = 'SELECT count(*) FROM scratch WHERE n > $1'"
    )
    with _postgres() as wrapper:
        with wrapper.cursor() as cursor:
            cursor.execute("CREATE TEMPORARY TABLE scratch (n integer)")
        with pytest.raises(_Refused), transaction.atomic(using=wrapper.alias):
            with wrapper.cursor() as cursor:
                cursor.execute("INSERT INTO scratch VALUES (1)")
                for _ in range(PREPARE_THRESHOLD + 1):  # prepared on the last run
                    cursor.execute(statement, [0])
                cursor.execute(plans)
                runs_before = cursor.fetchone()[0]
            raise _Refused  # as a refused booking leaves its transaction
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM scratch")
            assert cursor.fetchone() == (0,)  # rolled back
            cursor.execute(statement, [0])
            cursor.execute(plans)
            # Still prepared on the server, and run as that statement again (psycopg's own
            # rollback sends DEALLOCATE ALL: no row).
            assert cursor.fetchone() == (runs_before + 1,)


def _pipeline_outcomes(url: str, together: bool) -> list:
    """What a pipeline of five statements gives, the third failing, with and without
    send_together: each step's result or error, and the connection's state afterwards.
    Where psycopg raises the error depends on when the server's answer arrives (its own
    loop reads answers while it sends the next statements, send_together's at the fetch):
    so nothing is read once the failing statement is sent."""
    from config.postgresql.base import send_together
    from config.settings.env import PREPARE_THRESHOLD

    outcomes = []
    with psycopg.connect(url, autocommit=True, prepare_threshold=PREPARE_THRESHOLD) as conn:
        for run in range(PREPARE_THRESHOLD + 2):  # the statement prepared on later runs
            try:
                with conn.pipeline() as pipeline:
                    if together:
                        send_together(pipeline)
                    conn.execute("BEGIN")
                    first = conn.execute("SELECT %s::int * 2", [run])
                    if run % 2:  # its results fetched before the failing statement is sent
                        outcomes.append(("first", first.fetchall()))
                    conn.execute("SELECT 1 / %s", [0])
                    conn.execute("SELECT 4")
                    if not run % 2:  # or with it
                        outcomes.append(("first", first.fetchall()))
                    conn.execute("COMMIT")
            except psycopg.Error as error:
                outcomes.append(("error", type(error).__name__))
            conn.execute("ROLLBACK")
            outcomes.append(("state", conn.pgconn.transaction_status, conn.pgconn.pipeline_status))
        prepared = conn.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement = 'SELECT $1::int * 2'"
        ).fetchone()
    return [*outcomes, ("prepared", prepared)]


def test_a_pipeline_that_sends_together_gives_what_psycopg_gives():
    """send_together changes when statements reach the server, not what comes back: the
    results, a failed statement's error, the transaction and pipeline states after it, the
    statement psycopg prepares after its threshold."""
    url = os.environ["TEST_POSTGRES_URL"]
    outcomes = _pipeline_outcomes(url, together=True)
    assert outcomes == _pipeline_outcomes(url, together=False)
    idle = ("state", pq.TransactionStatus.IDLE, pq.PipelineStatus.OFF)
    assert outcomes[:6] == [
        ("error", "DivisionByZero"),  # at the fetch that reads its results, or before
        idle,
        ("first", [(2,)]),
        ("error", "DivisionByZero"),  # at the end of the pipeline, or before
        idle,
        ("error", "DivisionByZero"),
    ]
    assert outcomes[-1] == ("prepared", (1,))


def _backend_pid(wrapper) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _end_request(wrapper) -> None:
    """What `request_finished` (and the next `request_started`) does to a connection."""
    wrapper.close_if_unusable_or_obsolete()


def test_a_request_thread_keeps_its_connection_and_others_give_theirs_back(db):
    with _postgres(pool_max=2) as wrapper:
        _backend_pid(wrapper)  # any thread but the web processes' request threads
        _end_request(wrapper)
        assert wrapper.connection is None  # back to the pool

        wrapper.keep_between_requests = True  # as the request threads are
        pid = _backend_pid(wrapper)
        kept = wrapper.connection
        _end_request(wrapper)
        assert wrapper.connection is kept
        assert _backend_pid(wrapper) == pid


def test_a_kept_connection_goes_back_to_the_pool_when_it_is_due(db, monkeypatch):
    from config.postgresql import base

    monkeypatch.setattr(base, "KEEP_SECONDS", 0.0)
    with _postgres(pool_max=2) as wrapper:
        wrapper.keep_between_requests = True
        _backend_pid(wrapper)
        _end_request(wrapper)
        assert wrapper.connection is None


def test_a_kept_connection_is_checked_without_a_round_trip_and_replaced_once_dead(db):
    url = os.environ["TEST_POSTGRES_URL"]
    with _postgres(pool_max=2) as wrapper, psycopg.connect(url, autocommit=True) as watcher:
        wrapper.keep_between_requests = True
        pid = _backend_pid(wrapper)
        _end_request(wrapper)
        wrapper.close_if_health_check_failed()  # the next request's first query does this
        # Django's own check would have sent a query: the last one is still ours.
        assert _last_query(watcher, pid) == "SELECT pg_backend_pid()"

        _terminate(watcher, pid)
        _end_request(wrapper)
        assert _backend_pid(wrapper) != pid  # a live connection, and no error


def test_a_request_that_leaves_a_transaction_open_does_not_hand_it_on(db):
    from psycopg import pq

    with _postgres(pool_max=1) as wrapper:
        wrapper.keep_between_requests = True
        _backend_pid(wrapper)
        wrapper.connection.execute("BEGIN")  # as a pipeline's BEGIN whose request was cut short
        wrapper.connection.execute("CREATE TEMPORARY TABLE left_open (n integer)")
        _end_request(wrapper)
        assert wrapper.connection is None
        with wrapper.cursor() as cursor:
            assert wrapper.connection.info.transaction_status == pq.TransactionStatus.IDLE
            cursor.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'left_open'")
            assert cursor.fetchone() == (0,)  # rolled back by the pool, not committed
