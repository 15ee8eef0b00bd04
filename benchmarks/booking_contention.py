"""Booking POSTs from 32 concurrent clients: throughput, latency, safety and memory.

For each database (a private PostgreSQL server, a SQLite file) and each serving set-up,
one client process runs 32 logged-in students through the real session and CSRF checks, on
kept-alive HTTP/1.1 connections of its own (`Connection`: half of aiohttp's CPU per
request, since it shares the cores with the servers). Set-ups (--setups):

- uvicorn:N     N uvicorn processes (production's web processes, serving HTTP and
                websockets), each on its own port;
- daphne:N      N daphne processes, each on its own port;
- daphne-fd:N   N daphne processes accepting from one shared socket (`daphne --fd`);
- gunicorn:N    gunicorn with N sync workers for the REST API, beside one daphne for the
                websockets (its memory counts for the set-up; it takes no requests here);
- gthread:NxT   the same with N gthread workers of T threads each (they keep connections
                alive).

With several ports, each request goes to the port with the fewest requests in flight, as
the proxy's `least_conn` upstream does (docs/operations.md).

Phases, each bounded in requests and seconds:

- uncontended: every request books a free slot (distinct experiment/time), so each should
  be a 201; the rate is bookings per second;
- contended: every request races for a random 10-minute slot within six hours of ONE
  experiment; 201 and 409 are the only right answers, and afterwards the database must hold
  no two active bookings of that experiment that overlap.

The lab has a term of past bookings (`history`), as one that has run a while has; each phase
starts from them alone, their statistics taken again (`Database.reset`), so PostgreSQL plans
the booking statements as it does for such a lab, not for an empty table.

The raw SQL floor runs the statements of booking.services.bookings.booking_create (the user
lock and the catalogue, the user's and the experiment's bookings, the insert) straight
through psycopg (bound on the server and prepared, as Django's settings here) or sqlite3
from 32 threads, right before each set-up: API / raw is what the framework costs. Peak RSS is
the sum over the server's process trees, sampled every 100 ms.

The servers run with the production environment of docs/operations.md: DJANGO_DEBUG=0, a
secret key, DJANGO_ALLOWED_HOSTS=127.0.0.1, LOG_LEVEL=WARNING, Redis as channel layer and
Celery broker (private servers from scripts/services.py), JOBS_IN_PROCESS=0.

    .venv/bin/python benchmarks/booking_contention.py            # everything, a table
    .venv/bin/python benchmarks/booking_contention.py --json     # the same, as JSON
    .venv/bin/python benchmarks/booking_contention.py --profile  # where one booking's time goes
    .venv/bin/python benchmarks/booking_contention.py --plain-ab 24  # the plain POST's saving
    .venv/bin/python benchmarks/booking_contention.py --together-ab 24  # send_together's
    .venv/bin/python benchmarks/booking_contention.py --http-floor 2  # gunicorn, no Django
    .venv/bin/python benchmarks/booking_contention.py --trace DIR  # and every request's latency

gunicorn comes with the test extras (production runs uvicorn); set-ups whose server is
missing are skipped with a note. --profile uses pyinstrument when it is installed and
cProfile otherwise. On a machine other programs use, --quiet-wait makes
each set-up wait for them to go quiet, and the "other load" column says how far it did.
"""

# Starting this project's own programs with argument lists is part of the job.
# ruff: noqa: S603

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

sys.path.insert(0, str(common.ROOT))
from booking.sql import (  # noqa: E402  (no Django)
    AROUND_SQL,
    GENERIC_PLANS,
    INSERT_IN_TURN_SQL,
    INSERT_SQL,
    SLOTS_LOCK_CLASS,
    around_by_slug_sql,
    catalogue_sql,
    slots_turn,
)
from config.settings.env import PREPARE_THRESHOLD  # noqa: E402  (no Django settings)

CLIENTS = 32
EXPERIMENTS = 8
HISTORY_DAYS = 120  # the lab's past bookings: a term of them...
HISTORY_PER_DAY = 16  # ...on each experiment each day (16 half-hours from 08:00)
SLOT = 300  # seconds: the uncontended bookings, one after another on each experiment
RACE_WINDOW = 6 * 3600  # the contended bookings start on a minute within this...
RACE_LENGTH = 600  # ...and last this long
REQUEST_TIMEOUT = 30.0
PHASES = {
    # name: (requests, seconds) -- whichever comes first ends the phase
    "warmup": (2 * CLIENTS, 30.0),
    "uncontended": (2000, 15.0),
    "contended": (1000, 10.0),
    "raw": (4000, 10.0),
}
SETUPS = ("uvicorn:2", "daphne:2", "gunicorn:2")
BACKENDS = ("postgres", "sqlite")
ACTIVE = ("booked", "started")
TARGETS = {"p99_ms": 100.0, "api_raw": 0.30, "double": 0, "errors": 0, "rss_mb": 250.0}
TARGET_TEXT = (
    "targets (PostgreSQL, 32 clients): p99 < 100 ms, API >= 30 % of raw, "
    "0 double bookings, 0 errors other than 409, peak RSS < 250 MB"
)
BOOKINGS_URL = "/api/v1/bookings/"
REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # booking.rules
REFERENCE_ATTEMPTS = 8
DISTURBED = 0.25  # cores used by other programs during a phase that make its figures suspect


# --- the lab, made inside a Django process ---------------------------------------------


def seed(clients: int) -> dict:
    """One pool, its experiments, a cohort of logged-in students; runs under Django."""
    sys.path.insert(0, str(common.ROOT))
    import django

    django.setup()
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.middleware.csrf import CSRF_ALLOWED_CHARS
    from django.utils.crypto import get_random_string

    from booking.models import Experiment, Group, Pool

    def experiment(slug: str) -> Experiment:
        return Experiment.objects.create(slug=slug, title=slug, topic_stub=slug)

    experiments = [experiment(f"bench-{i:02d}") for i in range(EXPERIMENTS)]
    race = experiment("bench-race")
    # Generous: a refusal can only be an overlap.
    pool = Pool.objects.create(
        slug="bench",
        title="Benchmark pool",
        min_duration=60,
        max_duration=3600,
        book_ahead=365 * 86400,
        max_bookings=1_000_000,
    )
    pool.experiments.add(*experiments, race)
    group = Group.objects.create(slug="bench", title="Benchmark cohort")
    group.pools.add(pool)
    users = []
    for i in range(clients):
        user = User.objects.create_user(f"bench-student-{i:02d}", f"student{i:02d}@example.org")
        # What django.contrib.auth.login() stores, without a password hash to compute.
        session = import_module(settings.SESSION_ENGINE).SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.save()
        csrf = get_random_string(32, allowed_chars=CSRF_ALLOWED_CHARS)
        users.append({"id": user.pk, "session": session.session_key, "csrf": csrf})
    group.members.add(*(u["id"] for u in users))
    history_end = history(pool, [*experiments, race], [u["id"] for u in users])
    return {
        "history_end": history_end.isoformat(),
        "pool": {"id": pool.pk, "slug": pool.slug},
        "experiments": [{"id": e.pk, "slug": e.slug} for e in experiments],
        "race": {"id": race.pk, "slug": race.slug},
        "users": users,
    }


def history(pool, experiments: list, users: list[int]) -> datetime:
    """HISTORY_DAYS of past bookings in the pool, HISTORY_PER_DAY on each experiment each day,
    ending before today; returns when the last ends. A lab that has run a while has them, and
    PostgreSQL plans the booking statements by statistics that describe them: a table whose
    statistics say it is empty gets plans that scan it whole, and the benchmark would measure
    those plans slowing down as each phase fills the table."""
    from booking.models import Booking, BookingStatus

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=HISTORY_DAYS)
    last_end = first
    outcomes = [BookingStatus.ENDED] * 8 + [BookingStatus.CANCELLED, BookingStatus.NO_SHOW]
    rows, n = [], 0
    for day in range(HISTORY_DAYS):
        for experiment in experiments:
            for slot in range(HISTORY_PER_DAY):
                start = first + timedelta(days=day, hours=8, minutes=30 * slot)
                status = outcomes[n % len(outcomes)]
                rows.append(
                    Booking(
                        reference=f"H{n:05d}",
                        user_id=users[n % len(users)],
                        pool=pool,
                        experiment=experiment,
                        start=start,
                        end=start + timedelta(minutes=30),
                        booked_end=start + timedelta(minutes=30),
                        status=status,
                        created_at=start - timedelta(days=2),
                        started_at=start if status == BookingStatus.ENDED else None,
                        cancelled_at=start - timedelta(days=1)
                        if status == BookingStatus.CANCELLED
                        else None,
                    )
                )
                n += 1
                last_end = max(last_end, rows[-1].end)
    Booking.objects.bulk_create(rows, batch_size=2000)
    return last_end


def make_lab(env: dict[str, str], clients: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "_seed", str(clients)],
        cwd=common.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"seeding failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- what each request books -----------------------------------------------------------


def phase_base() -> datetime:
    """Tomorrow, on the hour: inside the pool's book-ahead and clear of 'now'."""
    return (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)


def booking_for(mode: str, n: int, lab: dict, base: datetime) -> tuple[dict, datetime, datetime]:
    """The n-th request of a phase: (experiment, start, end)."""
    if mode == "contended":
        rng = random.Random(n)  # a repeatable spread, not a secret
        start = base + timedelta(minutes=rng.randrange(RACE_WINDOW // 60))
        return lab["race"], start, start + timedelta(seconds=RACE_LENGTH)
    experiments = lab["experiments"]
    start = base + timedelta(seconds=SLOT * (n // len(experiments)))
    return experiments[n % len(experiments)], start, start + timedelta(seconds=SLOT)


# --- the load client (runs in a process of its own) ------------------------------------


def load(urls: list[str], lab: dict, mode: str, base: datetime, count: int, seconds: float) -> dict:
    """One phase from CLIENTS concurrent clients; each request goes to the url with the fewest
    requests in flight (ties broken at random), as nginx's `least_conn`. The client shares
    the cores with the servers it measures: it runs on uvloop, as they do, and speaks HTTP
    with `Connection`, to take less."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_load(urls, lab, mode, base, count, seconds))


class Connection:
    """One kept-alive HTTP/1.1 connection to one web process: a request's bytes out, the
    status and body back. It parses only what these servers send (a status line, headers
    with `content-length` or chunked encoding), so it takes half of aiohttp's CPU
    per request: the client shares the cores with the servers it measures."""

    def __init__(self, url: str) -> None:
        address = urllib.parse.urlsplit(url)
        self.host, self.port = address.hostname, address.port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        try:
            self.writer.write(head + body)
            status, length, chunked, close = _response_head(
                await self.reader.readuntil(b"\r\n\r\n")
            )
            if chunked:
                content = await self._chunks()
            else:
                content = await self.reader.readexactly(length) if length else b""
        except BaseException:
            self.close()
            raise
        if close:
            self.close()
        return status, content

    async def _chunks(self) -> bytes:
        parts = []
        while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await self.reader.readexactly(size + 2))
        await self.reader.readuntil(b"\r\n")  # the end of the (empty) trailers
        return b"".join(part[:-2] for part in parts)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _response_head(head: bytes) -> tuple[int, int, bool, bool]:
    """Status, content length, chunked?, connection to close? of a response head."""
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked, close = 0, False, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            close = b"close" in value.lower()
    return status, length, chunked, close


def _request_head(method: str, url: str, headers: dict[str, str], length: int) -> bytes:
    address = urllib.parse.urlsplit(url)
    lines = [f"{method} {address.path or '/'} HTTP/1.1", f"Host: {address.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _load(
    urls: list[str], lab: dict, mode: str, base: datetime, count: int, seconds: float
) -> dict:
    issued = 0
    trace: list[tuple[float, float, int]] = []  # (start s, latency ms, web process)
    statuses: Counter[str] = Counter()
    samples: dict[str, str] = {}
    expected = {"201", "409"} if mode == "contended" else {"201"}
    deadline = time.monotonic() + seconds
    in_flight = dict.fromkeys(urls, 0)
    opened: list[Connection] = []

    async def client(index: int, user: dict) -> None:
        nonlocal issued
        connections = {url: Connection(url) for url in urls}
        opened.extend(connections.values())
        headers = {
            "Cookie": f"sessionid={user['session']}; csrftoken={user['csrf']}",
            "X-CSRFToken": user["csrf"],
            "Accept": "*/*",
        }
        if mode == "warmup":  # also proves that the session is accepted
            url = urls[index % len(urls)]
            head = _request_head("GET", url + BOOKINGS_URL, headers, 0)
            async with asyncio.timeout(REQUEST_TIMEOUT):
                status, _ = await connections[url].request(head, b"")
            statuses[f"GET {status}"] += 1
        headers["Content-Type"] = "application/json"
        while issued < count and time.monotonic() < deadline:
            n = issued
            issued += 1
            url = min(urls, key=lambda u: (in_flight[u], random.random()))
            in_flight[url] += 1
            experiment, start, end = booking_for(mode, n, lab, base)
            body = json.dumps(
                {
                    "pool": lab["pool"]["slug"],
                    "experiment": experiment["slug"],
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                }
            ).encode()
            # Origin: as a browser on that address would send it.
            head = _request_head("POST", url + BOOKINGS_URL, headers | {"Origin": url}, len(body))
            began = time.perf_counter()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    code, content = await connections[url].request(head, body)
                status, text = str(code), content.decode("utf-8", "replace")
            except (
                OSError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                ValueError,
                TimeoutError,
            ) as error:
                status, text = f"exception {type(error).__name__}", str(error)
            in_flight[url] -= 1
            latency = (time.perf_counter() - began) * 1000
            trace.append((began - started, latency, urls.index(url)))
            statuses[status] += 1
            if status not in expected:
                samples.setdefault(status, text[:300])

    started = time.perf_counter()
    users = lab["users"]
    try:
        await asyncio.wait_for(
            asyncio.gather(*(client(i, users[i % len(users)]) for i in range(CLIENTS))),
            seconds + 2 * REQUEST_TIMEOUT,
        )
    finally:
        for connection in opened:
            connection.close()
    elapsed = time.perf_counter() - started
    latencies = [latency for _, latency, _ in trace]
    posts = sum(v for k, v in statuses.items() if not k.startswith("GET"))
    return {
        "requests": posts,
        "elapsed_s": elapsed,
        "rate": posts / elapsed,
        "booked": statuses["201"],
        "booked_rate": statuses["201"] / elapsed,
        "p50_ms": common.percentile(latencies, 50),
        "p99_ms": common.percentile(latencies, 99),
        "max_ms": max(latencies, default=float("nan")),
        "statuses": dict(statuses),
        "errors": sum(v for k, v in statuses.items() if k not in expected and k != "GET 200"),
        "error_samples": samples,
        "trace": trace,
    }


# --- the database seen directly: resets, double bookings, the raw floor ----------------

# The statements booking_create runs (booking/sql.py holds the hand-written ones, shared with
# the app so the floor cannot drift from it), as Django sends them: bound on the server, and
# prepared from their fifth run on a connection (config/settings/env.py).
SQL_CATALOGUE = {  # on PostgreSQL the same statement locks the user's row first
    "postgres": catalogue_sql(lock=True, one_experiment=True),
    "sqlite": catalogue_sql(lock=False, one_experiment=True),
}
SQL_AROUND = AROUND_SQL.format(mine="", marks="%s")  # SQLite (the pool has no quota)
# PostgreSQL: sent with the catalogue read
SQL_AROUND_BY_SLUG = around_by_slug_sql(active=ACTIVE, one_experiment=True)
SQL_ACTIVE = 'SELECT experiment_id, start, "end" FROM booking_booking WHERE status IN (%s, %s)'


class NotInserted(Exception):
    """PostgreSQL's insert wrote nothing (booking/sql.py): here, a reference in use."""


class Database:
    """One backend's database, opened directly (not through Django)."""

    def __init__(self, backend: str, url: str, history_end: datetime):
        self.backend = backend
        self.url = url
        self.path = url.removeprefix("sqlite:///")
        self.history_end = history_end  # the lab's past bookings end by then; resets keep them

    @contextlib.contextmanager
    def connect(self) -> Iterator:
        if self.backend == "postgres":
            import psycopg

            conn = psycopg.connect(self.url, prepare_threshold=PREPARE_THRESHOLD)
        else:
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            # What DATABASES' init_command runs on each of Django's connections.
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
                conn.execute(f"PRAGMA {pragma}")
        try:
            yield conn
        finally:
            conn.close()

    def sql(self, text: str) -> str:
        return text if self.backend == "postgres" else text.replace("%s", "?")

    def when(self, value: datetime) -> object:
        """A time as Django's backend sends it: aware for psycopg, naive UTC text for SQLite."""
        if self.backend == "postgres":
            return value
        return str(value.astimezone(UTC).replace(tzinfo=None))

    def reset(self) -> None:
        """Every booking but the lab's history gone, and (PostgreSQL) its statistics taken
        again, as autovacuum keeps them: each phase starts from the same table."""
        with self.connect() as conn:
            sql = 'DELETE FROM booking_booking WHERE "end" > %s'
            conn.execute(self.sql(sql), (self.when(self.history_end),))
            if self.backend == "postgres":
                conn.commit()
                conn.autocommit = True
                conn.execute("VACUUM ANALYZE booking_booking")

    def double_bookings(self) -> tuple[int, int]:
        """(active bookings, pairs of them on one experiment that overlap)."""
        with self.connect() as conn:
            rows = conn.execute(self.sql(SQL_ACTIVE), ACTIVE).fetchall()
        by_experiment: dict[int, list[tuple]] = defaultdict(list)
        for experiment, start, end in rows:
            if isinstance(start, str):
                start, end = datetime.fromisoformat(start), datetime.fromisoformat(end)
            by_experiment[experiment].append((start, end))
        pairs = 0
        for intervals in by_experiment.values():
            intervals.sort()
            for i, (_, end) in enumerate(intervals):
                for later_start, _ in intervals[i + 1 :]:
                    if later_start >= end:
                        break
                    pairs += 1
        return len(rows), pairs

    def book(self, conn: object, lab: dict, user: int, experiment: dict, interval: tuple) -> bool:
        """booking_create's statements in one transaction; False when the slot is taken. As
        booking_create, the whole transaction runs again when the random reference is
        already taken (SQLite refuses the insert; PostgreSQL's inserts nothing)."""
        for _ in range(REFERENCE_ATTEMPTS):
            try:
                return self._book_once(conn, lab, user, experiment, interval)
            except NotInserted:
                pass  # PostgreSQL: committed nothing
            except sqlite3.IntegrityError as error:
                if "reference" not in str(error):
                    raise
                conn.execute("ROLLBACK")
        raise RuntimeError(f"raw floor: {REFERENCE_ATTEMPTS} references taken in a row")

    def _book_once(
        self, conn: object, lab: dict, user: int, experiment: dict, interval: tuple
    ) -> bool:
        if self.backend == "postgres":
            return self._book_once_in_pipeline(conn, lab, user, experiment, interval)
        pool = lab["pool"]
        now = self.when(datetime.now(UTC))
        start, end = (self.when(t) for t in interval)
        run = conn.execute
        run("BEGIN IMMEDIATE")
        catalogue = self.sql(SQL_CATALOGUE[self.backend])
        run(catalogue, (user, user, experiment["slug"], pool["slug"])).fetchall()
        rows = run(
            self.sql(SQL_AROUND),
            (*ACTIVE, user, pool["id"], now, experiment["id"], *ACTIVE, end, start),
        ).fetchall()
        # rows: the count of the user's current bookings in the pool, with the experiment's
        # active bookings that overlap the interval (the pool has no quota)
        busy = [r for r in rows if r[2] == experiment["id"]]
        if not busy:
            self._insert(conn, (user, pool["id"], experiment["id"], start, end, end, "booked", now))
        run("COMMIT")
        return not busy

    def _book_once_in_pipeline(
        self, conn: object, lab: dict, user: int, experiment: dict, interval: tuple
    ) -> bool:
        """PostgreSQL, as booking_create sends it (its pipeline): BEGIN, the catalogue read
        (which locks the user) and the read of the bookings around in one round trip, then
        the insert and COMMIT in another."""
        pool = lab["pool"]
        now = datetime.now(UTC)
        start, end = interval
        with conn.pipeline():  # psycopg queues its BEGIN with the first statement
            conn.execute(GENERIC_PLANS, prepare=False)
            catalogue = conn.execute(
                SQL_CATALOGUE[self.backend], (user, user, user, experiment["slug"], pool["slug"])
            )
            around = conn.execute(
                SQL_AROUND_BY_SLUG,
                (pool["slug"], user, now, user, end, start, experiment["slug"], start, end),
            )
            catalogue.fetchall()
            rows = around.fetchall()
            busy = [r for r in rows if r[2] == experiment["id"]]
            inserted = None
            if not busy:
                inserted = self._insert(
                    conn, (user, pool["id"], experiment["id"], start, end, end, "booked", now)
                )
            conn.commit()  # COMMIT, sent with the insert
        if inserted is not None and inserted.rowcount == 0:
            raise NotInserted  # a reference in use: as booking_create, try again
        return not busy

    def _insert(self, conn: object, values: tuple) -> object:
        """The insert, as booking_create sends it, and its cursor: no savepoint (a reference
        already taken fails SQLite's transaction, and PostgreSQL's inserts nothing; book()
        runs it again)."""
        booking_id = uuid.uuid4()
        reference = "".join(random.choices(REFERENCE_ALPHABET, k=6))
        if self.backend == "postgres":  # the insert takes the turn on its slots first
            turn_sql, turn = slots_turn(values[2], values[3], values[4])
            # then checks that the experiment is still in service (no maintainer here)
            params = (booking_id, reference, *values, *turn, values[2], False)
            return conn.execute(INSERT_IN_TURN_SQL[turn_sql], params)
        return conn.execute(self.sql(INSERT_SQL), (booking_id.hex, reference, *values))


class TurnWaits:
    """PostgreSQL: samples pg_locks every `INTERVAL` seconds, from its own connection, for
    writers waiting for a turn on an experiment's slots (booking/sql.py); on SQLite it
    samples nothing.

    It shares the two cores with the servers it measures. Every 10 ms it took about 0.045
    cores (its thread and its PostgreSQL backend, about equally), 2 % of the machine taken
    from the servers; every 50 ms a fifth of that, and still some 30 samples in the race's
    shortest phase."""

    INTERVAL = 0.05

    # The experiment's lock (two keys, the first SLOTS_LOCK_CLASS) or a span's (one bigint key).
    SQL = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        f" AND ((objsubid = 2 AND classid = {SLOTS_LOCK_CLASS}) OR objsubid = 1)"
    )

    def __init__(self, db: Database):
        self.db = db
        self.counts: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TurnWaits:
        if self.db.backend == "postgres":
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _sample(self) -> None:
        with self.db.connect() as conn:
            conn.autocommit = True
            while not self._stop.wait(self.INTERVAL):
                self.counts.append(conn.execute(self.SQL).fetchone()[0])

    def figures(self) -> dict | None:
        """Share of samples with a writer waiting, and the most waiting at once."""
        if not self.counts:
            return None
        waiting = sum(1 for n in self.counts if n)
        return {
            "samples": len(self.counts),
            "share": waiting / len(self.counts),
            "most": max(self.counts),
        }


def raw_floor(db: Database, lab: dict, count: int, seconds: float) -> dict:
    """The uncontended bookings as raw SQL transactions from CLIENTS threads."""
    local = threading.local()
    opened: list = []
    lock = threading.Lock()
    base = phase_base()

    def step(n: int) -> None:
        if not hasattr(local, "conn"):
            with lock:
                local.user = lab["users"][len(opened) % len(lab["users"])]["id"]
                local.cm = db.connect()
                local.conn = local.cm.__enter__()
                opened.append(local.cm)
        experiment, start, end = booking_for("uncontended", n, lab, base)
        if not db.book(local.conn, lab, local.user, experiment, (start, end)):
            raise RuntimeError(f"raw floor: slot {n} was taken")

    try:
        done, elapsed = common.run_bounded(step, threads=CLIENTS, count=count, seconds=seconds)
    finally:
        for cm in opened:
            cm.__exit__(None, None, None)
    _, doubles = db.double_bookings()
    db.reset()
    return {"bookings": done, "elapsed_s": elapsed, "rate": done / elapsed, "double": doubles}


# --- one serving set-up ----------------------------------------------------------------


def start_setup(setup: str, env: dict[str, str], logdir: Path) -> list[common.WebServer]:
    """The servers of a set-up; the first one takes the REST traffic."""
    kind, _, count = setup.partition(":")
    count, _, threads = count.partition("x")
    processes = int(count or 1)
    if kind == "uvicorn":
        return [common.start_uvicorn(processes, env | {"WEB_PROCESSES": str(processes)}, logdir)]
    if kind in ("daphne", "daphne-fd"):
        env = env | {"WEB_PROCESSES": str(processes)}
        shared = kind == "daphne-fd"
        return [common.start_daphne(processes, env, logdir, shared_socket=shared)]
    if kind in ("gunicorn", "gthread"):
        env = env | {"WEB_PROCESSES": "1"}
        rest = common.start_gunicorn(
            processes, env, logdir, threads=int(threads or 4) if kind == "gthread" else 0
        )
        try:
            # The websockets still need daphne: it belongs to this set-up's memory.
            return [rest, common.start_daphne(1, env, logdir)]
        except BaseException:
            rest.stop()
            raise
    kinds = "uvicorn:N, daphne:N, daphne-fd:N, gunicorn:N or gthread:NxT"
    raise ValueError(f"unknown set-up {setup!r} ({kinds})")


def trace_summary(trace: list[tuple[float, float, int]], step: float = 0.5) -> str:
    """Whether a phase's tail is spread or comes from stalls: p99 by web process, and the
    median and maximum latency of the requests sent in each `step` seconds."""
    by_process: dict[int, list[float]] = defaultdict(list)
    by_step: dict[int, list[float]] = defaultdict(list)
    for began, latency, process in trace:
        by_process[process].append(latency)
        by_step[int(began // step)].append(latency)
    p99s = "/".join(f"{common.percentile(v, 99):.0f}" for _, v in sorted(by_process.items()))
    medians = [common.percentile(v, 50) for v in by_step.values()]
    maxima = [max(v) for v in by_step.values()]
    return (
        f"p99 by web process {p99s} ms; in each {step} s, median "
        f"{min(medians):.0f}-{max(medians):.0f} ms, maximum {min(maxima):.0f}-{max(maxima):.0f} ms"
    )


def _leaves(roots: list[int]) -> list[int]:
    """The processes that do the work: gunicorn's workers rather than its arbiter."""
    tree = common.process_tree(roots)
    return [pid for pid in tree if common.process_tree([pid]) == [pid]]


def run_setup(setup: str, env: dict[str, str], ctx: dict) -> dict:
    db: Database = ctx["db"]
    if ctx["quiet_wait"]:
        common.wait_for_quiet(ctx["quiet_wait"], threshold=DISTURBED)
    # The floor right before the set-up it divides: the same set-up's rate moved by a third
    # between runs minutes apart on this machine, and a floor measured once per backend lent
    # that drift to the ratio.
    common.say(f"  raw SQL floor, then {setup}")
    with TurnWaits(db) as raw_waits:
        raw = raw_floor(db, ctx["lab"], *ctx["phases"]["raw"])
    raw["turn_waits"] = raw_waits.figures()
    servers = start_setup(setup, env, ctx["tmpdir"])
    rest_pids = servers[0].pids
    all_pids = [pid for server in servers for pid in server.pids]

    def phase(mode: str) -> dict:
        count, seconds = ctx["phases"][mode]
        job = (servers[0].urls, ctx["lab"], mode, phase_base(), count, seconds)
        result = ctx["client"].submit(load, *job).result()
        trace = result.pop("trace")
        if ctx["trace"]:
            # Each request of the phase: when it was sent (s from the phase's start), its
            # latency (ms) and the web process (its index in the set-up's ports).
            name = f"{ctx['backend']}-{setup.replace(':', '-')}-{mode}.json"
            (ctx["trace"] / name).write_text(json.dumps(trace))
            common.say(f"  {mode}: {trace_summary(trace)}")
        return result

    groups = {"server": rest_pids, "client": [ctx["client_pid"]], **ctx["database_pids"]}
    groups |= {f"process {pid}": [pid] for pid in _leaves(rest_pids)}
    try:
        with common.RssSampler(all_pids, parts={"rest": rest_pids}) as rss:
            warm = phase("warmup")
            if warm["statuses"].get("GET 200") != CLIENTS or warm["errors"]:
                raise RuntimeError(f"{setup}: the warm-up failed: {warm}")
            db.reset()
            with common.cpu_used(groups) as cores, TurnWaits(db) as calm_waits:
                calm = phase("uncontended")
            db.reset()
            with TurnWaits(db) as race_waits:
                race = phase("contended")
            active, doubles = db.double_bookings()
            db.reset()
    finally:
        for server in servers:
            server.stop()
    ours = sum(cores[name] for name in ("server", "client", *ctx["database_pids"]))
    # Anything else that ran on the machine meanwhile disturbs the figures: say how much.
    cores["elsewhere"] = max(0.0, cores["machine"] * common.machine()["nproc"] - ours)
    return {
        "setup": setup,
        "server": servers[0].name,
        "raw": raw,
        "uncontended": calm | {"turn_waits": calm_waits.figures()},
        "contended": race
        | {"active_after": active, "double": doubles, "turn_waits": race_waits.figures()},
        # Cores busy on average during the uncontended phase.
        "cores": {name: round(value, 2) for name, value in cores.items()},
        "server_cpu_ms_per_request": 1000 * cores["server"] / max(1e-9, calm["rate"]),
        "peak_rss_mb": rss.peak_mb,
        "peak_rss_rest_mb": rss.part_peak_mb("rest"),
        "peak_pss_mb": rss.peak_pss_mb,
    }


def summary(backend: str, result: dict) -> dict:
    calm, race, raw = result["uncontended"], result["contended"], result["raw"]
    row = {
        "backend": backend,
        "setup": result["setup"],
        "bookings_s": calm["booked_rate"],
        "p50_ms": calm["p50_ms"],
        "p99_ms": calm["p99_ms"],
        "race_s": race["rate"],
        "race_p50_ms": race["p50_ms"],
        "race_p99_ms": race["p99_ms"],
        "race_201": race["statuses"].get("201", 0),
        "race_409": race["statuses"].get("409", 0),
        "errors": calm["errors"] + race["errors"],
        "double": race["double"],
        "raw_s": raw["rate"],
        "api_raw": calm["booked_rate"] / raw["rate"],
        "cpu_ms": result["server_cpu_ms_per_request"],
        "elsewhere": result["cores"]["elsewhere"],
        "rss_mb": result["peak_rss_mb"],
        "rss_rest_mb": result["peak_rss_rest_mb"],
        "pss_mb": result["peak_pss_mb"],
    }
    missed = []
    if max(row["p99_ms"], row["race_p99_ms"]) >= TARGETS["p99_ms"]:
        missed.append("p99")
    if row["api_raw"] < TARGETS["api_raw"]:
        missed.append("API/raw")
    if row["double"] > TARGETS["double"]:
        missed.append("double")
    if row["errors"] > TARGETS["errors"]:
        missed.append("errors")
    if row["rss_mb"] >= TARGETS["rss_mb"]:
        missed.append("RSS")
    row["missed"] = ", ".join(missed) or "none"
    return row


COLUMNS: list[common.Column] = [
    ("backend", "backend", ""),
    ("set-up", "setup", ""),
    ("bookings/s", "bookings_s", ".0f"),
    ("p50 ms", "p50_ms", ".0f"),
    ("p99 ms", "p99_ms", ".0f"),
    ("race/s", "race_s", ".0f"),
    ("race p99", "race_p99_ms", ".0f"),
    ("201/409", "race_201_409", ""),
    ("errors", "errors", "d"),
    ("double", "double", "d"),
    ("raw/s", "raw_s", ".0f"),
    ("API/raw", "api_raw", ".1%"),
    ("CPU ms/req", "cpu_ms", ".1f"),
    ("peak RSS MB", "rss_mb", ".0f"),
    ("of it REST", "rss_rest_mb", ".0f"),
    ("peak PSS MB", "pss_mb", ".0f"),
    ("other load", "elsewhere", ".2f"),
    ("targets missed", "missed", ""),
]


def report(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"Booking contention, {m['date']}: {m['nproc']} CPUs ({m['cpu']}), "
        f"Python {m['python']}, code {m['code']}, "
        f"uvicorn {results['uvicorn'] or 'absent'}, gunicorn {results['gunicorn'] or 'absent'}",
        f"{CLIENTS} clients; per phase at most (requests, seconds): {results['phases']}",
        f"load average before the run: {results['loadavg']}",
    ]
    durability = results["backends"].get("postgres", {}).get("durability")
    if durability:
        lines.append(f"PostgreSQL (durable, as in production): {durability}")
    lines.append("")
    rows = [r | {"race_201_409": f"{r['race_201']}/{r['race_409']}"} for r in results["rows"]]
    lines.append(common.table(rows, COLUMNS))
    lines += [
        "",
        TARGET_TEXT,
        f"other load: cores used by other programs during the uncontended phase; above "
        f"{DISTURBED} the row's figures are disturbed (CPU ms/req suffers least)",
    ]
    for name, backend in results["backends"].items():
        for setup in backend["setups"]:
            label = f"{name} {setup['setup']}"
            for phase in ("uncontended", "contended"):
                samples = setup[phase]["error_samples"]
                for status, text in samples.items():
                    lines.append(f"{label} {phase}: {status}: {text}")
            cores = ", ".join(f"{k} {v:.2f}" for k, v in setup["cores"].items())
            lines.append(f"{label}: cores busy while uncontended: {cores}")
            for phase in ("raw", "uncontended", "contended"):
                if waits := setup[phase].get("turn_waits"):
                    lines.append(
                        f"{label} {phase}: writers waiting for a turn on the slots in"
                        f" {waits['share']:.1%} of {waits['samples']} samples of pg_locks,"
                        f" at most {waits['most']} at once"
                    )
            if setup["cores"]["elsewhere"] > DISTURBED:
                lines.append(f"  WARNING: other work used {setup['cores']['elsewhere']:.2f} cores")
    lines += [f"skipped: {note}" for note in results["skipped"]]
    return "\n".join(lines)


# --- where one booking's time goes (--profile) -----------------------------------------

# Wall time (samples) by layer of code; a frame no fragment matches (the standard library,
# say) counts for the layer of its caller. The first match wins.
OUR_APPS = ("booking", "config", "workflows", "web")
LAYERS = (
    ("PostgreSQL driver and round trips", ("/psycopg/", "/psycopg_pool/", "/psycopg_binary/")),
    ("broker publish (Celery, kombu, redis)", ("/celery/", "/kombu/", "/redis/", "/vine/")),
    ("ORM: building SQL, making rows", ("/django/db/",)),
    ("DRF: dispatch, parsing, serializer, renderer", ("/rest_framework/",)),
    ("Django: handler, middleware, sessions, auth, CSRF", ("/django/",)),
    ("ASGI: asgiref threads", ("/asgiref/",)),
    ("our code", tuple(f"{common.ROOT}/{app}/" for app in OUR_APPS)),
)
# Wall time by step of the request: the innermost of these frames on the stack names it.
STEPS = (
    ("/django/db/backends/base/base.py", "connect", "connection from the pool"),
    ("/django/db/backends/base/base.py", "close", "connection back to the pool"),
    ("/django/contrib/sessions/backends/", "load", "session and user rows"),
    ("/django/contrib/auth/__init__.py", "get_user", "authentication (no query)"),
    ("/rest_framework/authentication.py", "enforce_csrf", "CSRF check"),
    ("/rest_framework/views.py", "initial", "DRF: permissions, throttles, negotiation"),
    ("/booking/apis.py", "parse", "parse and validate the body"),
    ("/booking/services/bookings.py", "booking_create", "booking_create: rules and glue"),
    # booking_create's pipeline (PostgreSQL): its two round trips
    ("/psycopg/cursor.py", "fetchall", "round trip: BEGIN, lock, catalogue, bookings around"),
    ("/psycopg/_pipeline.py", "__exit__", "round trip: insert, COMMIT"),
    ("/booking/services/bookings.py", "_check_windows", "query: windows"),
    ("/booking/", "booking_confirmation_enqueue", "after the commit: confirmation hook"),
    ("/booking/apis.py", "booking_to_dict", "response: booking_to_dict"),
    ("/rest_framework/response.py", "rendered_content", "response: JSON rendering"),
)
DRIVER = ("/psycopg/", "/psycopg_pool/", "/psycopg_binary/")
PROFILE_BATCH = 100  # requests between two resets, so no user piles up bookings


def _layer(path: str, inherited: str) -> str:
    for name, fragments in LAYERS:
        if any(fragment in path for fragment in fragments):
            return name
    return inherited


def _step(frame: object, inherited: str) -> str:
    path = frame.file_path or ""
    for fragment, function, name in STEPS:
        if frame.function == function and fragment in path:
            return name
    return inherited


def _split(frame: object, layer: str, step: str, totals: dict[str, Counter]) -> None:
    """Self time of every frame, by layer, by step, and by step in the database driver."""
    layer = _layer(frame.file_path or "", layer)
    step = _step(frame, step)
    own = frame.time - sum(child.time for child in frame.children)
    totals["layer"][layer] += own
    totals["step"][step] += own
    if layer == LAYERS[0][0]:
        totals["driver"][step] += own
    for child in frame.children:
        _split(child, layer, step, totals)


class BookingCalls:
    """Booking POSTs straight into Django's WSGI and ASGI handlers, in this process."""

    def __init__(self, lab: dict):
        from django.core.handlers.asgi import ASGIHandler
        from django.core.handlers.wsgi import WSGIHandler

        self.lab = lab
        self.wsgi = WSGIHandler()
        self.asgi = ASGIHandler()
        self.n = 0
        self.base = phase_base()

    def _next(self) -> tuple[dict, bytes]:
        user = self.lab["users"][self.n % len(self.lab["users"])]
        experiment, start, end = booking_for("uncontended", self.n, self.lab, self.base)
        self.n += 1
        body = {"pool": "bench", "experiment": experiment["slug"]}
        body |= {"start": start.isoformat(), "end": end.isoformat()}
        return user, json.dumps(body).encode()

    def _headers(self, user: dict, length: int) -> dict[str, str]:
        return {
            "host": common.HOST,
            "cookie": f"sessionid={user['session']}; csrftoken={user['csrf']}",
            "x-csrftoken": user["csrf"],
            "origin": f"http://{common.HOST}",
            "content-type": "application/json",
            "content-length": str(length),
        }

    def wsgi_post(self) -> None:
        import io

        user, body = self._next()
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": BOOKINGS_URL,
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "SERVER_NAME": common.HOST,
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": common.HOST,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        for name, value in self._headers(user, len(body)).items():
            key = name.upper().replace("-", "_")
            environ[key if key.startswith("CONTENT_") else f"HTTP_{key}"] = value
        status: list[str] = []
        response = self.wsgi(environ, lambda s, h, exc_info=None: status.append(s))
        content = b"".join(response)
        response.close()  # request_finished: the connection goes back to the pool
        if not status[0].startswith("201"):
            raise RuntimeError(f"WSGI booking: {status[0]} {content[:300]!r}")

    async def asgi_post(self) -> None:
        user, body = self._next()
        headers = self._headers(user, len(body))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": BOOKINGS_URL,
            "raw_path": BOOKINGS_URL.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
            "client": (common.HOST, 50000),
            "server": (common.HOST, 80),
        }
        sent: list[dict] = []
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict:
            if messages:
                return messages.pop()
            await asyncio.Event().wait()  # the client never leaves; Django cancels this
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        await self.asgi(scope, receive, send)
        if sent[0]["status"] != 201:
            raise RuntimeError(f"ASGI booking: {sent[0]['status']} {sent[1:]!r:.300}")


def _batches(requests: int, call: object, reset: object) -> tuple[float, float]:
    """(wall, CPU) seconds this process spent in `requests` calls, resetting bookings
    between batches (not counted). CPU time is what other programs on the machine disturb
    least."""
    wall = cpu = 0.0
    done = 0
    while done < requests:
        size = min(PROFILE_BATCH, requests - done)
        began, began_cpu = time.perf_counter(), time.process_time()
        for _ in range(size):
            call()
        wall += time.perf_counter() - began
        cpu += time.process_time() - began_cpu
        done += size
        reset()
    return wall, cpu


def _in_django(lab_path: Path, *, keep_connection: bool) -> tuple[BookingCalls, Callable]:
    """Django set up in this process, the booking POSTs of the lab, and a reset that deletes
    their bookings (the lab's history stays). `keep_connection`: the connection stays open
    between requests, as on the web processes' request threads; otherwise it goes back to
    the pool at each reset, as at the end of a request."""
    sys.path.insert(0, str(common.ROOT))
    import django

    django.setup()
    from django.db import connection, connections

    for conn in connections.all(initialized_only=False):
        conn.keep_between_requests = keep_connection
    lab = json.loads(lab_path.read_text())
    history_end = datetime.fromisoformat(lab["history_end"])

    def reset() -> None:
        with connection.cursor() as cursor:
            cursor.execute('DELETE FROM booking_booking WHERE "end" > %s', [history_end])
        if not keep_connection:
            connection.close()

    return BookingCalls(lab), reset


def profile_inside(lab_path: Path, requests: int, out: Path | None) -> int:
    """Runs under Django: per-request costs, then a profile of the WSGI booking POST."""
    calls, reset = _in_django(lab_path, keep_connection=False)
    from django.db import connection

    _batches(50, calls.wsgi_post, reset)  # warm-up: imports, pools, caches
    queries = {"count": 0, "seconds": 0.0}

    def timed(execute, sql, params, many, context):  # noqa: ANN001 - Django's signature
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            queries["count"] += 1
            queries["seconds"] += time.perf_counter() - began

    with connection.execute_wrapper(timed):
        wsgi_s, wsgi_cpu = _batches(requests, calls.wsgi_post, reset)
    loop = asyncio.new_event_loop()
    _batches(50, lambda: loop.run_until_complete(calls.asgi_post()), reset)
    asgi_s, asgi_cpu = _batches(requests, lambda: loop.run_until_complete(calls.asgi_post()), reset)
    loop.close()
    per = 1000 / requests
    print(f"{requests} booking POSTs one after another, PostgreSQL, DEBUG off:")
    print(f"  WSGI handler: {wsgi_s * per:.2f} ms each, {wsgi_cpu * per:.2f} ms of CPU")
    print(
        f"  ASGI handler (as under daphne): {asgi_s * per:.2f} ms each, "
        f"{asgi_cpu * per:.2f} ms of CPU"
    )
    print(
        f"  SQL statements: {queries['count'] / requests:.1f} per request, "
        f"{queries['seconds'] * per:.2f} ms each request inside cursor.execute"
    )
    try:
        from pyinstrument import Profiler
    except ImportError:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(_batches, requests, calls.wsgi_post, reset)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        return 0
    profiler = Profiler(interval=0.0002, async_mode="disabled")
    profiler.start()
    _batches(requests, calls.wsgi_post, reset)
    profiler.stop()
    root = profiler.last_session.root_frame()
    totals: dict[str, Counter] = {"layer": Counter(), "step": Counter(), "driver": Counter()}
    _split(root, "other (harness)", "framework: handler, middleware, DRF dispatch", totals)
    # Shares of the profiled run, in ms of an unprofiled WSGI request.
    scale = wsgi_s * per / root.time
    print("\nWall time of a WSGI booking POST by layer of code (pyinstrument samples):")
    for layer, seconds in totals["layer"].most_common():
        print(f"  {layer:<52} {seconds * scale:6.2f} ms  {seconds / root.time:6.1%}")
    print("\n... and by step of the request (of it: inside the database driver, waiting on")
    print("    PostgreSQL or converting values):")
    for step, seconds in totals["step"].most_common():
        driver = totals["driver"][step] * scale
        print(f"  {step:<52} {seconds * scale:6.2f} ms  {seconds / root.time:6.1%}", end="")
        print(f"  (driver {driver:.2f} ms)" if driver >= 0.01 else "")
    print()
    print(
        profiler.output_text(
            unicode=True,
            time="percent_of_total",
            processor_options={"filter_threshold": 0.015},
        )
    )
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "booking-post.html").write_text(profiler.output_html())
        full = profiler.output_text(unicode=True, show_all=True, time="percent_of_total")
        (out / "booking-post.txt").write_text(full)
        print(f"The whole profile: {out / 'booking-post.html'}, {out / 'booking-post.txt'}")
    return 0


def _switch_plain(on: bool) -> None:
    from booking.apis import BookingListCreateApi

    BookingListCreateApi.plain_post = on


def _switch_together(on: bool) -> None:
    from booking.services import bookings
    from config.postgresql.base import send_together

    bookings.send_together = send_together if on else lambda pipeline: None


# What --plain-ab and --together-ab turn on and off: a label, and the switch.
SWITCHES = {
    "plain": ("plain POST", _switch_plain),
    "together": ("statements sent together", _switch_together),
}


def _process_cpu(pid: int) -> float:
    """CPU seconds of process `pid` so far (user and system, from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ab_inside(lab_path: Path, requests: int, rounds: int, switch: str) -> int:
    """Runs under Django: batches of `requests` WSGI booking POSTs, one after another, with
    a change (SWITCHES) on and off in turn, `rounds` times; the CPU of each batch per request,
    in this process and in its PostgreSQL backend. The request keeps its connection, as the
    web processes' request threads do. Alternating batches of a few hundred milliseconds, and
    their paired ratios, leave out most of what the machine's moving speed does to runs
    minutes apart. The backend's CPU comes in clock ticks (10 ms): its figure is the total of
    each side over all rounds."""
    calls, reset = _in_django(lab_path, keep_connection=True)
    from django.db import connection

    label, turn = SWITCHES[switch]
    _batches(100, calls.wsgi_post, reset)  # warm-up: imports, pools, caches
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    cpu: dict[bool, list[float]] = {True: [], False: []}
    database: dict[bool, float] = {True: 0.0, False: 0.0}
    for _ in range(rounds):
        for on in (True, False):
            turn(on)
            database_before = _process_cpu(backend)
            _, seconds = _batches(requests, calls.wsgi_post, reset)
            cpu[on].append(1000 * seconds / requests)
            database[on] += _process_cpu(backend) - database_before
    turn(True)
    ratios = sorted(on / off for on, off in zip(cpu[True], cpu[False], strict=True))
    print(f"{rounds} rounds of {requests} booking POSTs each way, PostgreSQL, DEBUG off:")
    for on, state in ((True, "on "), (False, "off")):
        values = sorted(cpu[on])
        print(
            f"  {label} {state}: CPU ms per request, median {statistics.median(values):.3f} "
            f"(min {values[0]:.3f}, max {values[-1]:.3f}); its PostgreSQL backend "
            f"{1000 * database[on] / (rounds * requests):.3f} (all rounds)"
        )
    quarter = len(ratios) // 4
    print(
        f"  on / off, paired by round: median {statistics.median(ratios):.3f} "
        f"(quartiles {ratios[quarter]:.3f}-{ratios[-1 - quarter]:.3f}); PostgreSQL backend, "
        f"all rounds: {database[True] / database[False]:.3f}"
    )
    return 0


def run_profile(
    requests: int, settings: str, out: Path | None, ab: tuple[str, int] | None = None
) -> int:
    svc = common.services()
    svc.exit_on_signals()
    tmpdir = svc.make_tmpdir("labbook-profile-")
    redis_url, stop_redis = svc.start_redis(tmpdir)
    server_url, stop_pg = svc.start_postgres(tmpdir, durable=True)
    try:
        url = common.create_database(server_url, "labbook_bench")
        env = common.production_env(
            url,
            REDIS_URL=redis_url,
            CELERY_BROKER_URL=redis_url.rsplit("/", 1)[0] + "/1",
            DJANGO_SETTINGS_MODULE=settings,
        )
        common.say("[profile] migrate and seed")
        common.manage(env, "migrate", "--noinput")
        lab_path = tmpdir / "lab.json"
        lab_path.write_text(json.dumps(make_lab(env, CLIENTS)))
        if ab:
            command = ["_ab", str(lab_path), str(requests), str(ab[1]), ab[0]]
        else:
            common.say(f"[profile] {requests} requests x 3")
            command = ["_profile", str(lab_path), str(requests)]
            command += [str(out.resolve())] if out else []
        done = subprocess.run(
            [sys.executable, __file__, *command],
            cwd=common.ROOT,
            env=env,
            timeout=600,
            check=False,
        )
        return done.returncode
    finally:
        stop_pg()
        stop_redis()


# --- a whole run -----------------------------------------------------------------------


def run_http_floor(workers: int, rounds: int, seconds: float) -> int:
    """The booking POSTs of the uncontended phase, from the same client, against gunicorn
    serving an application that does nothing (benchmarks/_http_floor_app.py): the HTTP
    server's and the client's share of a booking, without Django."""
    svc = common.services()
    svc.exit_on_signals()
    tmpdir = svc.make_tmpdir("labbook-bench-")
    lab = {  # what the client reads from a lab; nothing checks it
        "pool": {"slug": "floor"},
        "experiments": [{"slug": f"floor-{i}"} for i in range(EXPERIMENTS)],
        "users": [{"session": "none", "csrf": "none"}] * CLIENTS,
    }
    server = common.start_gunicorn(
        workers, os.environ.copy(), tmpdir, app="_http_floor_app:app", chdir=Path(__file__).parent
    )
    rows = []
    try:
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as client:
            client_pid = client.submit(os.getpid).result()
            for _ in range(rounds):
                job = (server.urls, lab, "uncontended", phase_base(), 1_000_000, seconds)
                with common.cpu_used({"server": server.pids, "client": [client_pid]}) as cores:
                    calm = client.submit(load, *job).result()
                rows.append(
                    {
                        "rate": calm["rate"],
                        "p50_ms": calm["p50_ms"],
                        "p99_ms": calm["p99_ms"],
                        "server_ms": 1000 * cores["server"] / calm["rate"],
                        "client_ms": 1000 * cores["client"] / calm["rate"],
                    }
                )
    finally:
        server.stop()
    print(
        f"HTTP floor: gunicorn {package_version('gunicorn')}, {workers} sync workers, "
        "an application "
        f"that answers 201 at once; {CLIENTS} clients, {seconds:.0f} s per round"
    )
    columns: list[common.Column] = [
        ("requests/s", "rate", ".0f"),
        ("p50 ms", "p50_ms", ".1f"),
        ("p99 ms", "p99_ms", ".1f"),
        ("server CPU ms/req", "server_ms", ".2f"),
        ("client CPU ms/req", "client_ms", ".2f"),
    ]
    print(common.table(rows, columns))
    return 0


def package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def postgres_durability(url: str) -> str:
    """The server's settings that decide whether a commit survives a crash, as it reports
    them (production's: all on)."""
    import psycopg

    names = ("fsync", "synchronous_commit", "full_page_writes")
    with psycopg.connect(url) as conn:
        return ", ".join(f"{n} {conn.execute(f'SHOW {n}').fetchone()[0]}" for n in names)


def run_backend(backend: str, setups: list[str], ctx: dict, args: argparse.Namespace) -> dict:
    tmpdir: Path = ctx["tmpdir"]
    stops = []
    try:
        if backend == "postgres":
            server_url, stop = common.services().start_postgres(tmpdir, durable=True)
            stops.append(stop)
            url = common.create_database(server_url, "labbook_bench")
            ctx["durability"] = postgres_durability(url)
            pidfile = tmpdir / "postgres" / "data" / "postmaster.pid"
            ctx["database_pids"] = {"postgres": [int(pidfile.read_text().split()[0])]}
        else:
            url = f"sqlite:///{tmpdir / 'bench.sqlite3'}"
            ctx["database_pids"] = {}
        env = common.production_env(
            url,
            REDIS_URL=ctx["redis"] + "/0",
            CELERY_BROKER_URL=ctx["redis"] + "/1",
            DATABASE_POOL_MAX=str(args.pool_max),
            DJANGO_SETTINGS_MODULE=args.settings,
        )
        common.say(f"[{backend}] migrate and seed")
        common.manage(env, "migrate", "--noinput")
        ctx["lab"] = make_lab(env, CLIENTS)
        ctx["db"] = Database(backend, url, datetime.fromisoformat(ctx["lab"]["history_end"]))
        ctx["db"].reset()  # statistics that count the history, before the first floor
        ctx["backend"] = backend
        results = []
        for setup in setups:
            common.say(f"[{backend}] {setup}")
            results.append(run_setup(setup, env, ctx))
        return {
            "setups": results,
            "durability": ctx.get("durability") if backend == "postgres" else None,
        }
    finally:
        for stop in reversed(stops):
            stop()


def main(argv: list[str]) -> int:
    if argv[:1] == ["_seed"]:
        print(json.dumps(seed(int(argv[1]))))
        return 0
    if argv[:1] == ["_profile"]:
        return profile_inside(Path(argv[1]), int(argv[2]), Path(argv[3]) if argv[3:] else None)
    if argv[:1] == ["_ab"]:
        return ab_inside(Path(argv[1]), int(argv[2]), int(argv[3]), argv[4])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="postgres, sqlite")
    parser.add_argument(
        "--setups",
        default=",".join(SETUPS),
        help="uvicorn:N, daphne:N, daphne-fd:N, gunicorn:N, gthread:NxT",
    )
    parser.add_argument("--pool-max", type=int, default=8, help="DATABASE_POOL_MAX")
    parser.add_argument("--requests", type=int, help="requests in each API phase")
    parser.add_argument("--seconds", type=float, help="time limit of each API phase")
    parser.add_argument(
        "--settings", default="config.settings.base", help="DJANGO_SETTINGS_MODULE to measure"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0,
        help="before each set-up, wait up to this many seconds for other programs to go quiet",
    )
    parser.add_argument(
        "--trace",
        type=Path,
        metavar="DIR",
        help="also write each request's start, latency and web process there, a file per phase",
    )
    parser.add_argument("--profile", action="store_true", help="profile one booking POST")
    parser.add_argument(
        "--profile-requests", type=int, help="requests per profile (500) or per batch (100)"
    )
    parser.add_argument("--profile-out", type=Path, help="also save the whole profile here")
    parser.add_argument(
        "--plain-ab",
        type=int,
        metavar="ROUNDS",
        help="CPU per booking POST with the plain POST on and off, in alternating batches",
    )
    parser.add_argument(
        "--together-ab",
        type=int,
        metavar="ROUNDS",
        help="the same with the pipeline's statements sent together (send_together) or not",
    )
    parser.add_argument(
        "--http-floor",
        type=int,
        metavar="WORKERS",
        help="only the HTTP server and client's cost: gunicorn workers serving no application",
    )
    args = parser.parse_args(argv)
    for switch, rounds in (("plain", args.plain_ab), ("together", args.together_ab)):
        if rounds:
            requests = args.profile_requests or 100
            return run_profile(requests, args.settings, None, ab=(switch, rounds))
    if args.profile:
        return run_profile(args.profile_requests or 500, args.settings, args.profile_out)
    if args.http_floor:
        return run_http_floor(args.http_floor, rounds=3, seconds=args.seconds or 10.0)
    phases = dict(PHASES)
    for name in ("uncontended", "contended"):
        count, seconds = phases[name]
        phases[name] = (args.requests or count, args.seconds or seconds)

    setups, skipped = [], []
    for setup in args.setups.split(","):
        program = {"gthread": "gunicorn"}.get(kind := setup.partition(":")[0], kind)
        program = program.removesuffix("-fd")
        if (common.BIN / program).exists():
            setups.append(setup)
        else:
            skipped.append(f"{setup}: {program} is not installed in {common.BIN}")

    svc = common.services()
    svc.exit_on_signals()
    tmpdir = svc.make_tmpdir("labbook-bench-")
    redis_url, stop_redis = svc.start_redis(tmpdir)
    results: dict = {
        "machine": common.machine(),
        "gunicorn": package_version("gunicorn"),
        "uvicorn": package_version("uvicorn"),
        "clients": CLIENTS,
        "phases": phases,
        "pool_max": args.pool_max,
        "settings": args.settings,
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "backends": {},
        "skipped": skipped,
    }
    try:
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as client:
            ctx = {
                "tmpdir": tmpdir,
                "redis": redis_url.rsplit("/", 1)[0],
                "phases": phases,
                "client": client,
                "client_pid": client.submit(os.getpid).result(),
                "quiet_wait": args.quiet_wait,
                "trace": args.trace,
            }
            if args.trace:
                args.trace.mkdir(parents=True, exist_ok=True)
            for backend in args.backends.split(","):
                results["backends"][backend] = run_backend(backend, setups, ctx, args)
    finally:
        stop_redis()
    results["rows"] = [
        summary(backend, setup)
        for backend, data in results["backends"].items()
        for setup in data["setups"]
    ]
    common.emit(results, as_json=args.json, text=report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
