"""Faults with real processes: a web process killed mid-request, the database going away,
a relay that cannot be reached when sessions are cancelled.

Each run keeps a history of its attempts (who asked for what, when it was sent, when and how
it came back) and judges the outcome from the database afterwards: a booking the API
confirmed is there and readable, a refused one left nothing, nothing is half written.

The database fault runs on whichever backend the suite runs: on PostgreSQL a private
server of its own is stopped and started again under a running web process (the suite's
shared server is never touched); on SQLite the web process is killed with SIGKILL in the
middle of writes, and the file must pass SQLite's integrity check.
"""

import http.client
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import psycopg.rows
import pytest
from django.db import connection
from django.utils import timezone

from booking.models import Booking, Relay
from booking.models.bookings import ACTIVE_STATUSES
from booking.rules import REFERENCE_ALPHABET
from relay_control.models import RevocationDelivery
from sessions_app.tokens import relay_admin_token_for
from tests.conftest import RELAY_SECRET
from tests.factories import make_experiment
from tests.live.conftest import load_services
from tests.model.test_stateful import write_stats
from tests.support.processes import start_test_relay, wait_until
from tests.support.servers import ROOT, LiveClient, WebProcess, live_env


def live(test):
    """Real processes on the committed test database (personas with real password hashes)."""
    for mark in (
        pytest.mark.usefixtures("live_passwords"),
        pytest.mark.django_db(transaction=True),
        pytest.mark.live,
    ):
        test = mark(test)
    return test


POOL = "pendulums"
SLOT = timedelta(minutes=5)  # bookings are one slot long; a week holds 2016 of them
RETRY_PAUSE = 0.05  # after a refused connection: the server is down, do not spin
TRACEBACK = re.compile(r"Traceback|File \"/", re.IGNORECASE)


# --- a history of attempts ------------------------------------------------------------------


@dataclass
class Attempt:
    client: str
    method: str
    path: str
    body: dict | None
    invoked: float
    completed: float = 0.0
    status: int | None = None  # None: no HTTP answer (connection refused, reset, timeout)
    answer: object = None
    error: str = ""

    @property
    def in_flight_at_fault(self) -> bool:
        """Sent, and the connection broke before an answer: the outcome is unknown."""
        return self.status is None and "refused" not in self.error.lower()


@dataclass
class History:
    attempts: list[Attempt] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, name: str, client: LiveClient, method: str, path: str, body=None) -> Attempt:
        attempt = Attempt(name, method, path, body, time.monotonic())
        try:
            attempt.status, attempt.answer = client.request(method, path, body)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            attempt.error = f"{type(error).__name__}: {getattr(error, 'reason', error)}"
        attempt.completed = time.monotonic()
        with self.lock:
            self.attempts.append(attempt)
        return attempt

    def summary(self) -> Counter:
        return Counter(
            str(a.status) if a.status is not None else a.error.split(":")[0] for a in self.attempts
        )


def login(base_url: str, username: str) -> LiveClient:
    client = LiveClient(base_url)
    client.login(username, f"pw-{username}")
    return client


def booking_body(start: datetime, experiment: str | None, minutes: int = 5) -> dict:
    body = {
        "pool": POOL,
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=minutes)).isoformat(),
    }
    if experiment:
        body["experiment"] = experiment
    return body


def open_the_pool(lab) -> None:
    """Room for many bookings per user: the runs are about faults, not limits."""
    lab.pool.max_bookings = 10_000
    lab.pool.max_duration = 3600
    lab.pool.save()
    lab.group.members.add(lab.outsider)


def judge_bookings(history: History, rows: list[dict], users: dict[str, int]) -> dict:
    """Every confirmed booking is a row, as confirmed; every other row is whole and comes
    from an attempt whose answer was lost in the fault; so a refused attempt left nothing."""
    bookings = [a for a in history.attempts if a.method == "POST" and a.path == "/api/v1/bookings/"]
    confirmed = {a.answer["id"]: a for a in bookings if a.status == 201}
    lost = {
        (users[a.client], a.body["start"], a.body["end"]) for a in bookings if a.in_flight_at_fault
    }
    rows_by_id = {str(r["id"]): r for r in rows}
    for booking_id, a in confirmed.items():
        row = rows_by_id.get(booking_id)
        assert row is not None, f"confirmed but missing: {a}"
        assert (row["user_id"], utc(row["start"]), utc(row["end"])) == (
            users[a.client],
            a.body["start"],
            a.body["end"],
        ), (row, a)
    lost_but_written = 0
    for booking_id, row in rows_by_id.items():
        assert row["end"] > row["start"] and row["booked_end"] == row["end"], row
        assert len(row["reference"]) == 6 and set(row["reference"]) <= set(REFERENCE_ALPHABET)
        assert row["status"] == "booked", row
        if booking_id not in confirmed:
            key = (row["user_id"], utc(row["start"]), utc(row["end"]))
            assert key in lost, f"a booking nobody was told of, and not lost in the fault: {row}"
            lost_but_written += 1
    active = sorted(
        (r for r in rows if r["status"] in ACTIVE_STATUSES),
        key=lambda r: (r["experiment_id"], r["start"]),
    )
    for a, b in zip(active, active[1:], strict=False):
        if a["experiment_id"] == b["experiment_id"]:
            assert a["end"] <= b["start"], (a, b)
    return {
        "attempts": len(bookings),
        "confirmed": len(confirmed),
        "in flight at the fault": sum(a.in_flight_at_fault for a in bookings),
        "of which written": lost_but_written,
    }


def utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


# --- (a) a web process killed while bookings are in flight -----------------------------------


class SlotCounter:
    """Slots handed out in pairs, so that every second request races with the one before."""

    def __init__(self) -> None:
        self.n = 0
        self.lock = threading.Lock()

    def __next__(self) -> int:
        with self.lock:
            self.n += 1
            return self.n // 2


def booking_traffic(
    history: History, clients: dict[str, LiveClient], *, base: datetime, stop: threading.Event
) -> list[threading.Thread]:
    """Each client books slot after slot until `stop`, on pend00, pend01 or any experiment."""
    slots = SlotCounter()

    def run(index: int, name: str) -> None:
        for n in range(2000):  # bounded (slots 0 to 1000); `stop` ends it long before
            if stop.is_set():
                return
            start = base + SLOT * next(slots)
            experiment = ("pend00", "pend01", None)[(index + n) % 3]
            attempt = history.call(
                name, clients[name], "POST", "/api/v1/bookings/", booking_body(start, experiment)
            )
            if attempt.status is None:
                time.sleep(RETRY_PAUSE)

    threads = [
        threading.Thread(target=run, args=(i, name), daemon=True) for i, name in enumerate(clients)
    ]
    for thread in threads:
        thread.start()
    return threads


def confirmed(history: History, *, after: float = 0.0) -> int:
    return sum(a.status == 201 and a.invoked > after for a in history.attempts)


@live
def test_a_web_process_killed_mid_request_loses_no_confirmed_booking(lab):
    open_the_pool(lab)
    users = {u.username: u.pk for u in (lab.student, lab.student2, lab.maintainer, lab.outsider)}
    server = WebProcess(live_env()).start()
    history = History()
    try:
        clients = {name: login(server.url, name) for name in users}
        base = timezone.now().replace(microsecond=0) + timedelta(minutes=10)
        stop = threading.Event()
        threads = booking_traffic(history, clients, base=base, stop=stop)
        wait_until(
            lambda: confirmed(history) >= 12,
            timeout=20,
            what="bookings confirmed before the kill",
        )
        server.kill()  # SIGKILL: no shutdown, requests cut off wherever they are
        killed_at = time.monotonic()
        time.sleep(0.5)  # the traffic goes on against a closed port meanwhile
        server = WebProcess(live_env(), port=server.port).start()
        wait_until(
            lambda: confirmed(history, after=killed_at) >= 8,
            timeout=20,
            what="bookings confirmed after the restart",
        )
        stop.set()
        for thread in threads:
            thread.join(timeout=20)
        rows = list(Booking.objects.values())
        verdict = judge_bookings(history, rows, users)
        # Confirmed means readable, by its owner, from the restarted process.
        for attempt in history.attempts:
            if attempt.status == 201:
                status, body = clients[attempt.client].request(
                    "GET", f"/api/v1/bookings/{attempt.answer['id']}/"
                )
                assert status == 200 and body["start"] == attempt.answer["start"], body
        assert not [a for a in history.attempts if a.status and a.status >= 500]
        if connection.vendor == "sqlite":
            assert sqlite_integrity(connection.settings_dict["NAME"]) == "ok"
        report = {**history.summary(), **verdict}
        print(f"\nkill -9 of daphne: {report}")
        write_stats("fault-web-process-killed", report)
    finally:
        server.stop()


def sqlite_integrity(path: str) -> str:
    with sqlite3.connect(path) as db:
        (result,) = db.execute("PRAGMA integrity_check").fetchone()
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    return result


# --- (b) the database goes away under a running web process -----------------------------------

SEED = """
from django.contrib.auth.models import User
from booking.models import Experiment, Group, Pool, Relay, Stream

relay = Relay.objects.create(
    slug="relay-a", access_url="http://127.0.0.1:9/relay-a/access", secret_env="RELAY_TEST_SECRET"
)
pool = Pool.objects.create(
    slug="pendulums", title="Pendulums", max_duration=3600, max_bookings=10000, max_extension=900
)
group = Group.objects.create(slug="course-x", title="Course X")
group.pools.add(pool)
for slug in ("pend00", "pend01", "pend02"):
    experiment = Experiment.objects.create(slug=slug, title=slug, topic_stub=slug)
    Stream.objects.create(experiment=experiment, name="data", relay=relay, scopes=["read", "write"])
    pool.experiments.add(experiment)
for name in ("student", "student2", "student3"):
    user = User.objects.create_user(name, password="pw-" + name, last_name=name.title())
    group.members.add(user)
print(",".join(f"{u.username}={u.pk}" for u in User.objects.all()))
"""
USERS = ("student", "student2", "student3")


def manage(database_url: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=live_env(DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def private_database(database_url: str) -> dict[str, int]:
    """Create the schema with migrate, add a small lab; the users' ids by name."""
    manage(database_url, "migrate", "--verbosity", "0")
    out = manage(database_url, "shell", "-c", SEED).strip().splitlines()[-1]
    return {name: int(pk) for name, pk in (item.split("=") for item in out.split(","))}


def postgres_again(services, tmpdir: Path, server_url: str):
    """Start the stopped private server again: same data folder, same port."""
    root = tmpdir / "postgres"
    command = [
        str(services.pg_bindir() / "postgres"),
        "-D",
        str(root / "data"),
        "-p",
        str(urlsplit(server_url).port),
        "-k",
        str(root / "run"),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "max_connections=200",
        "-c",
        "fsync=off",
    ]
    user = "postgres" if os.geteuid() == 0 else None  # as scripts/services.py runs it
    with (root / "postgres.log").open("ab") as out:
        process = subprocess.Popen(
            services._as_user(command, user),
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    stop = services._stopper(process, signal.SIGINT)

    def accepts() -> bool:
        try:
            with psycopg.connect(server_url, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    wait_until(accepts, timeout=30, every=0.1, what="PostgreSQL back")
    return stop


def outage_traffic(history: History, clients: dict[str, LiveClient], base: datetime) -> None:
    """Every client books and lists at once while the database is away; back when all have
    their answers."""
    calls = []
    for index, name in enumerate(clients):
        body = booking_body(base + SLOT * (1100 + index), None)
        calls += [
            (name, "POST", "/api/v1/bookings/", body),
            (name, "GET", "/api/v1/bookings/", None),
        ]
    threads = [
        threading.Thread(
            target=history.call, args=(name, clients[name], method, path, body), daemon=True
        )
        for name, method, path, body in calls
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)


def book_until_confirmed(history: History, clients: dict, base: datetime, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for index, name in enumerate(clients):
        n = 0
        while True:
            n += 1
            start = base + SLOT * (1500 + index * 100 + n % 100)
            attempt = history.call(
                name, clients[name], "POST", "/api/v1/bookings/", booking_body(start, None)
            )
            if attempt.status == 201:
                break
            assert time.monotonic() < deadline, (
                f"no booking after the database came back: {attempt}"
            )
            time.sleep(0.2)


def code(attempt: Attempt) -> str:
    return attempt.answer.get("code", "") if isinstance(attempt.answer, dict) else attempt.error


def clean_failure(attempt: Attempt) -> bool:
    """A 503 server_busy without a trace of the server's insides, or no connection at all."""
    if attempt.status is None:
        return True
    if attempt.status == 503:
        return isinstance(attempt.answer, dict) and attempt.answer.get("code") == "server_busy"
    return attempt.status < 500


def postgres_rows(database_url: str) -> list[dict]:
    with psycopg.connect(database_url, row_factory=psycopg.rows.dict_row) as db:
        rows = db.execute("SELECT * FROM booking_booking").fetchall()
    return [{**r, "id": str(r["id"])} for r in rows]


@live
def test_the_database_going_away_fails_cleanly_and_recovers(lab, tmp_path):
    if connection.vendor == "postgresql":
        database_restart_under_a_running_server()
    else:
        sqlite_writer_killed_mid_write(tmp_path)


def database_restart_under_a_running_server() -> None:
    services = load_services()
    # Not under pytest's tmp_path: the postgres user must be able to reach the folder.
    tmpdir = services.make_tmpdir("labbook-faults-")
    server_url, stop_postgres = services.start_postgres(tmpdir)
    with psycopg.connect(server_url, autocommit=True) as db:
        db.execute("CREATE DATABASE faults")
    database_url = server_url.rsplit("/", 1)[0] + "/faults"
    users = private_database(database_url)
    server = WebProcess(live_env(DATABASE_URL=database_url)).start()
    history = History()
    try:
        clients = {name: login(server.url, name) for name in USERS}
        base = timezone.now().replace(microsecond=0) + timedelta(minutes=10)
        for n, name in enumerate(clients):
            attempt = history.call(
                name,
                clients[name],
                "POST",
                "/api/v1/bookings/",
                booking_body(base + SLOT * n, None),
            )
            assert attempt.status == 201, attempt
        before = len(history.attempts)

        stop_postgres()
        outage_started = len(history.attempts)
        outage_traffic(history, clients, base)
        during = history.attempts[outage_started:]
        stop_postgres = postgres_again(services, tmpdir, server_url)

        book_until_confirmed(history, clients, base, timeout=30)
        after = history.attempts[outage_started + len(during) :]

        # A quick restart while nobody asks: the pooled connections die unnoticed. First a
        # burst, so that each web process holds several connections in its pool.
        outage_traffic(history, clients, base + SLOT * 30)
        stop_postgres()
        stop_postgres = postgres_again(services, tmpdir, server_url)
        quick_started = len(history.attempts)
        book_until_confirmed(history, clients, base + SLOT * 60, timeout=30)
        after_quick = history.attempts[quick_started:]
        rows = postgres_rows(database_url)
        verdict = judge_bookings(history, rows, users)
        report = {
            "before": before,
            "during": dict(Counter(f"{a.status} {code(a)}" for a in during)),
            "slowest answer during (s)": round(max(a.completed - a.invoked for a in during), 1),
            "after the restart": [a.status for a in after],
            "after a quick restart": [f"{a.status} {code(a)}" for a in after_quick],
            **verdict,
        }
        print(f"\nPostgreSQL restart under daphne: {report}")
        write_stats("fault-database-restart", report)
        unclean = [
            a for a in during + after + after_quick if not clean_failure(a) and a.status != 201
        ]
        assert not unclean, unclean
        assert not [a for a in during if a.status and a.status < 300], "served without a database?"
        # Every request of the outage is answered (none left to the client's timeout): those
        # that waited for a thread past WEB_QUEUE_TIMEOUT get their 503 without running.
        assert [code(a) for a in during] == ["server_busy"] * len(during), report["during"]
        # The pool checks a connection before lending it: a restart costs no request.
        assert not [a for a in after_quick if a.status == 503], after_quick
        assert not any(TRACEBACK.search(str(a.answer)) for a in history.attempts)
    finally:
        server.stop()
        stop_postgres()


def sqlite_writer_killed_mid_write(tmp_path: Path) -> None:
    path = tmp_path / "faults.sqlite3"
    database_url = f"sqlite:///{path}"
    users = private_database(database_url)
    env = live_env(DATABASE_URL=database_url)
    server = WebProcess(env).start()
    history = History()
    try:
        clients = {name: login(server.url, name) for name in USERS}
        base = timezone.now().replace(microsecond=0) + timedelta(minutes=10)
        stop = threading.Event()
        threads = booking_traffic(history, clients, base=base, stop=stop)
        wait_until(
            lambda: confirmed(history) >= 12,
            timeout=20,
            what="bookings confirmed before the kill",
        )
        server.kill()
        killed_at = time.monotonic()
        time.sleep(0.3)  # the traffic meets a closed port for a moment
        stop.set()
        for thread in threads:
            thread.join(timeout=20)
        # Nobody has the file open now: SQLite recovers its journal and checks the pages.
        assert sqlite_integrity(str(path)) == "ok"
        refused_while_down = [a for a in history.attempts if a.invoked > killed_at]
        server = WebProcess(env, port=server.port).start()
        book_until_confirmed(history, clients, base, timeout=20)
        with sqlite3.connect(path) as db:
            db.row_factory = sqlite3.Row
            rows = [sqlite_row(r) for r in db.execute("SELECT * FROM booking_booking")]
        verdict = judge_bookings(history, rows, users)
        for attempt in history.attempts:
            if attempt.status == 201:
                status, _ = clients[attempt.client].request(
                    "GET", f"/api/v1/bookings/{attempt.answer['id']}/"
                )
                assert status == 200
        assert all(clean_failure(a) or a.status == 201 for a in history.attempts)
        report = {**history.summary(), "refused while down": len(refused_while_down), **verdict}
        print(f"\nkill -9 of daphne mid-write on SQLite: {report}")
        write_stats("fault-database-writer-killed", report)
    finally:
        server.stop()


def sqlite_row(row: sqlite3.Row) -> dict:
    """A booking row as the ORM gives it (SQLite keeps the UUID without dashes, times as
    text in UTC)."""
    out = dict(row)
    out["id"] = str(uuid.UUID(out["id"]))
    for name in ("start", "end", "booked_end"):
        out[name] = datetime.fromisoformat(out[name]).replace(tzinfo=UTC)
    return out


# --- (c) a relay that cannot be reached when sessions are cancelled --------------------------


@live
def test_revocations_reach_a_relay_that_was_down_when_the_sessions_were_cancelled(lab):
    open_the_pool(lab)
    extra = [make_experiment(f"extra{i}", lab.relay) for i in range(3)]
    lab.pool.experiments.add(*extra)
    experiments = ["pend00", "pend01", *(e.slug for e in extra)]
    with start_test_relay(secret=RELAY_SECRET) as relay:
        Relay.objects.filter(pk=lab.relay.pk).update(access_url=relay.url, audience="")
        server = WebProcess(live_env(JOBS_IN_PROCESS="1", JOB_INTERVAL_SECONDS="1")).start()
        try:
            client = login(server.url, "student")
            start = timezone.now().replace(microsecond=0) - timedelta(seconds=5)
            booking_ids = []
            for slug in experiments:
                status, booking = client.request(
                    "POST", "/api/v1/bookings/", booking_body(start, slug, minutes=30)
                )
                assert status == 201, booking
                status, state = client.request("POST", f"/api/v1/bookings/{booking['id']}/session/")
                assert status == 201, state
                booking_ids.append(booking["id"])

            relay.stop()
            for booking_id in booking_ids:
                status, body = client.request("POST", f"/api/v1/bookings/{booking_id}/cancel/")
                assert status == 200 and body["status"] == "cancelled"

            def all_tried() -> bool:
                deliveries = list(RevocationDelivery.objects.values_list("state", "attempts"))
                return len(deliveries) == len(booking_ids) and all(n for _, n in deliveries)

            wait_until(all_tried, timeout=15, every=0.1, what="a push attempt per revocation")
            # Failed pushes stay pending: never reported as delivered.
            assert set(RevocationDelivery.objects.values_list("state", flat=True)) == {"pending"}
            down_for = time.monotonic()

            relay.start()  # back on its port, with an empty deny list

            def all_denied() -> bool:
                return set(booking_ids) <= deny_list(relay)

            wait_until(all_denied, timeout=60, every=0.25, what="every booking on the deny list")
            report = {
                "revocations": len(booking_ids),
                "delivered within (s)": round(time.monotonic() - down_for, 1),
            }
            print(f"\nrelay back: {report}")
            write_stats("fault-relay-unreachable", report)
            assert set(RevocationDelivery.objects.values_list("state", flat=True)) == {"delivered"}
        finally:
            server.stop()


def deny_list(relay) -> set[str]:
    """GET /bids/deny with an admin token, as an operator would; empty while unreachable."""
    token = relay_admin_token_for(
        secret=RELAY_SECRET.encode(),
        audience=relay.audience,
        issuer="http://127.0.0.1:8000",
        now=timezone.now(),
    )
    request = urllib.request.Request(f"{relay.url}/bids/deny", headers={"Authorization": token})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return set(json.loads(response.read())["booking_ids"])
    except OSError:
        return set()


def test_pooled_postgres_connections_are_checked_before_use():
    from config.postgresql.base import check_connection
    from config.settings.env import database_from_url

    settings = database_from_url("postgres://labbook:pw@127.0.0.1:5432/platform", pool_max=8)
    assert settings["CONN_HEALTH_CHECKS"] is True
    assert settings["ENGINE"] == "config.postgresql"
    if connection.vendor == "postgresql":
        assert connection.pool._check is check_connection
