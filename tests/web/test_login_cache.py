"""Login sessions remembered by a web process, and forgotten on PostgreSQL's word
(web/login_cache.py, the triggers of web migration 0003).

The listener runs against the test command's PostgreSQL in both passes; the requests through
Django remember sessions only where Django's database is PostgreSQL.
"""

import os
import re
import sqlite3
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from tests.conftest import client_for
from tests.support.processes import wait_until
from tests.support.servers import test_database_url as database_url
from web.login_cache import (
    BEAT,
    CHANNEL,
    DEAF_AFTER,
    EVERYONE,
    LoginCache,
    Remembered,
    login_cache,
    login_caches_stop,
)

BOOKINGS = "/api/v1/bookings/"
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
SOON = 5.0  # seconds a notification may take to arrive, at most, in these tests


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _row(user_id: int = 7, expires: datetime = NOW + timedelta(hours=1), at: float = 0.0):
    return Remembered("data", expires, user_id, (user_id, "name"), at)


def _listening(seconds: float = 60, size: int = 10) -> tuple[LoginCache, Clock]:
    clock = Clock()
    cache = LoginCache("default", seconds, size=size, clock=clock)
    cache._heard(clock())  # as the listener does once its first heartbeat is back
    return cache, clock


# --- what is remembered, and for how long (no database) --------------------------------


def test_nothing_is_remembered_before_the_process_listens():
    cache = LoginCache("default", 60, clock=Clock())
    assert not cache.put("k", _row(), cache.epoch)
    assert cache.get("k", NOW) is None


def test_a_row_is_served_until_the_setting_s_seconds_or_the_session_s_expiry():
    cache, clock = _listening(seconds=60)
    assert cache.put("k", _row(at=clock()), cache.epoch)
    assert cache.get("k", NOW).user_id == 7
    for _ in range(59):  # the listener's heartbeats, each answered
        clock.now += 1
        cache._heard(clock())
    assert cache.get("k", NOW) is not None
    clock.now += 2
    cache._heard(clock())
    assert cache.get("k", NOW) is None  # older than LOGIN_CACHE_SECONDS: read again
    cache.put("k", _row(at=clock(), expires=NOW + timedelta(seconds=1)), cache.epoch)
    assert cache.get("k", NOW) is not None
    assert cache.get("k", NOW + timedelta(seconds=1)) is None  # the session expired


def test_a_row_read_before_a_notification_arrived_is_not_remembered():
    cache, clock = _listening()
    epoch = cache.epoch  # a request reads this, then the session
    cache.forget("99")  # any change notified meanwhile, even another user's
    assert not cache.put("k", _row(at=clock()), epoch)
    assert cache.get("k", NOW) is None
    assert cache.put("k", _row(at=clock()), cache.epoch)


def test_a_notification_forgets_its_user_s_sessions_and_star_forgets_everyone():
    cache, clock = _listening()
    for key, user in (("a", 1), ("b", 1), ("c", 2), ("d", 3)):
        cache.put(key, _row(user, at=clock()), cache.epoch)
    cache.forget("1")
    assert [cache.get(key, NOW) is not None for key in "abcd"] == [False, False, True, True]
    cache.forget(BEAT + "123 abc 1")  # another process's heartbeat says nothing
    assert cache.get("c", NOW) is not None
    cache.forget("not a user id")  # never sent; if it were, nothing would stay
    assert cache.get("c", NOW) is None and cache.get("d", NOW) is None
    cache.put("c", _row(2, at=clock()), cache.epoch)
    cache.forget(EVERYONE)
    assert cache.get("c", NOW) is None


def test_a_process_that_has_not_heard_from_the_server_serves_nothing_and_starts_afresh():
    cache, clock = _listening()
    cache.put("k", _row(at=clock()), cache.epoch)
    clock.now += DEAF_AFTER
    assert not cache.listening and cache.get("k", NOW) is None
    cache._heard(clock())  # the heartbeat answered at last: what was remembered may be stale
    assert cache.listening and cache.get("k", NOW) is None


def test_the_oldest_rows_go_first_when_full():
    cache, clock = _listening(size=2)
    for key in "abc":
        cache.put(key, _row(at=clock()), cache.epoch)
    assert [cache.get(key, NOW) is not None for key in "abc"] == [False, True, True]


# --- the listener, against a real PostgreSQL server ---------------------------------------


def _server(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


def test_the_listener_forgets_on_notification_and_goes_deaf_when_its_connection_dies():
    url = os.environ["TEST_POSTGRES_URL"]
    cache = LoginCache("default", 60, connect=lambda: _server(url))
    cache.start()
    try:
        wait_until(lambda: cache.listening, timeout=SOON, what="the listener to listen")
        cache.put("a", _row(1, at=cache.clock()), cache.epoch)
        cache.put("b", _row(2, at=cache.clock()), cache.epoch)
        with _server(url) as other:
            other.execute("SELECT pg_notify(%s, '1')", [CHANNEL])
            wait_until(lambda: cache.get("a", NOW) is None, timeout=SOON, what="user 1 forgotten")
            assert cache.get("b", NOW) is not None

            pid = cache.listener_pid
            assert other.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]
            wait_until(lambda: not cache.listening, timeout=SOON, what="the listener to go deaf")
            assert cache.get("b", NOW) is None
            wait_until(lambda: cache.listening, timeout=SOON, what="the listener to come back")
            assert cache.listener_pid not in (None, pid)
            assert cache.get("b", NOW) is None  # it starts afresh
    finally:
        cache.stop()
    assert not cache.listening


class ListensElsewhere(psycopg.Connection):
    """A connection whose LISTEN does not reach the channel, as behind a pooler that hands
    each statement to another server session."""

    def execute(self, query, params=None, **kwargs):  # noqa: ANN001, ANN201 - psycopg's
        if str(query).startswith("LISTEN"):
            query = "LISTEN elsewhere"
        return super().execute(query, params, **kwargs)


def test_a_listener_that_does_not_hear_its_own_heartbeat_never_remembers():
    url = os.environ["TEST_POSTGRES_URL"]
    deaf = LoginCache("default", 60, connect=lambda: ListensElsewhere.connect(url, autocommit=True))
    hearing = LoginCache("default", 60, connect=lambda: _server(url))
    deaf.start()
    hearing.start()
    try:
        wait_until(lambda: hearing.listening and deaf.beats_sent, timeout=SOON, what="heartbeats")
        hearing.put("a", _row(1, at=hearing.clock()), hearing.epoch)
        with _server(url) as other:  # time for the deaf one's heartbeat to come back, too
            other.execute("SELECT pg_notify(%s, '1')", [CHANNEL])
        wait_until(lambda: hearing.get("a", NOW) is None, timeout=SOON, what="user 1 forgotten")
        assert not deaf.listening
        assert not deaf.put("a", _row(1, at=deaf.clock()), deaf.epoch)
    finally:
        deaf.stop()
        hearing.stop()


# --- through Django: requests, and changes made elsewhere ----------------------------------


@pytest.fixture
def remembering(settings):
    """Sessions remembered as in production (the suite's settings turn it off)."""
    settings.LOGIN_CACHE_SECONDS = 60
    yield
    login_caches_stop()


def _session_reads(client) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(BOOKINGS).status_code == 200
    return sum("web_loginsession" in q["sql"] for q in captured.captured_queries)


def _listening_here() -> LoginCache | None:
    cache = login_cache(connection.alias)
    if cache is not None:
        wait_until(lambda: cache.listening, timeout=SOON, what="the process to listen")
    return cache


@pytest.mark.django_db(transaction=True)
def test_a_second_request_reads_no_session_on_postgresql_only(lab, remembering):
    client = client_for(lab.student)
    cache = _listening_here()
    assert _session_reads(client) == 1
    if connection.vendor == "postgresql":
        assert cache is not None
        assert _session_reads(client) == 0
        assert _session_reads(client_for(lab.student2)) == 1  # each session its own
    else:  # no notifications, so nothing is remembered
        assert cache is None
        assert _session_reads(client) == 1


@pytest.mark.django_db(transaction=True)
def test_a_session_read_inside_a_transaction_is_not_remembered(lab, remembering):
    client = client_for(lab.student)
    _listening_here()
    with transaction.atomic():
        assert _session_reads(client) == 1
    assert _session_reads(client) == 1


CHANGES = {
    # Each as another process or tool would make it: its own connection, plain SQL.
    "deactivate": "UPDATE auth_user SET is_active = false WHERE id = %(user)s",
    "new password": "UPDATE auth_user SET password = 'pbkdf2_sha256$1$x$y' WHERE id = %(user)s",
    "delete": "DELETE FROM auth_user WHERE id = %(user)s",
    "logout": "DELETE FROM web_loginsession WHERE session_key = %(key)s",
    "clearsessions": "DELETE FROM web_loginsession WHERE user_id = %(user)s",
    "expire": "UPDATE web_loginsession SET expire_date = '2000-01-01Z' WHERE session_key = %(key)s",
    "truncate": "TRUNCATE web_loginsession",
}


def _elsewhere(sql: str, params: dict) -> None:
    """Run `sql` on a connection of its own, as another process would, and commit."""
    if connection.vendor == "postgresql":
        with psycopg.connect(database_url(), autocommit=True) as other:
            other.execute(sql, params)
        return
    sql = re.sub(r"%\((\w+)\)s", r":\1", sql).replace("TRUNCATE", "DELETE FROM")
    other = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    try:
        other.execute(sql, params)
    finally:
        other.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("change", CHANGES)
def test_a_change_made_by_another_process_ends_the_remembered_session(lab, remembering, change):
    # A user of their own for the plain DELETE: the lab's students are referenced elsewhere.
    user = User.objects.create_user("loner") if change == "delete" else lab.student
    client = client_for(user)
    _listening_here()
    assert client.get(BOOKINGS).status_code == 200
    assert _session_reads(client) == (0 if connection.vendor == "postgresql" else 1)
    key = client.session.session_key
    _elsewhere(CHANGES[change], {"user": user.pk, "key": key})
    wait_until(
        lambda: client.get(BOOKINGS).status_code in (401, 403),
        timeout=SOON,
        what=f"the session to stop working after {change}",
    )


@pytest.mark.django_db(transaction=True)
def test_a_logout_in_this_process_ends_the_session_at_once(lab, remembering):
    client = client_for(lab.student)
    _listening_here()
    assert client.get(BOOKINGS).status_code == 200
    assert client.get(BOOKINGS).status_code == 200
    key = client.session.session_key
    client.post("/accounts/logout/")
    client.cookies["sessionid"] = key  # the old cookie, replayed before any notification
    assert client.get(BOOKINGS).status_code in (401, 403)


@pytest.mark.django_db(transaction=True)
def test_a_user_saved_in_this_process_is_forgotten_at_once(lab, remembering):
    client = client_for(lab.student)
    _listening_here()
    assert client.get(BOOKINGS).status_code == 200
    lab.student.is_active = False
    lab.student.save()
    assert client.get(BOOKINGS).status_code in (401, 403)
