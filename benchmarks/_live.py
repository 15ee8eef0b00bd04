"""Helpers for the benchmarks that run the platform live and also use Django in-process.

A benchmark starts private servers (scripts/services.py), migrates a fresh database, and
sets Django up in its own process with the very environment its web processes get (same
database, same Redis, same secret key, so session codes derived here are valid there).
It then makes its lab in bulk with the ORM and the services, and drives the servers over
loopback. Every wait and every loop here is bounded.
"""

# Starting this project's own programs with argument lists is part of the job.
# ruff: noqa: S603

from __future__ import annotations

import argparse
import contextlib
import http.client
import math
import os
import resource
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import Message
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

if str(common.ROOT) not in sys.path:
    sys.path.append(str(common.ROOT))  # the project's packages (and tests.support)

REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # booking.rules
REFERENCE_SPACE = len(REFERENCE_ALPHABET) ** 6  # 2**30
# An odd multiplier modulo 2**30 is a bijection: distinct indexes, distinct references.
REFERENCE_SCRAMBLE = (0x2545F491, 0x0123_4567)


# --- servers and Django in this process ------------------------------------------------


@dataclass
class Platform:
    tmpdir: Path
    env: dict[str, str]
    database_url: str
    redis_url: str | None
    logdir: Path
    server_pids: dict[str, list[int]] = field(default_factory=dict)


def setup_django(env: dict[str, str]) -> None:
    """Django in this process, configured exactly as the servers are."""
    os.environ.update(env)
    import django

    django.setup()


def close_django() -> None:
    """Give back every database connection (and close the pools) before the server stops."""
    from django.db import connections

    for conn in connections.all():
        with contextlib.suppress(Exception):
            conn.close()
        close_pool = getattr(conn, "close_pool", None)
        if close_pool is not None:
            with contextlib.suppress(Exception):
                close_pool()


@contextlib.contextmanager
def platform(prefix: str, *, redis: bool, **extra: str) -> Iterator[Platform]:
    """PostgreSQL (and Redis), a migrated database, Django set up here; all gone afterwards."""
    svc = common.services()
    svc.exit_on_signals()
    tmpdir = svc.make_tmpdir(prefix)
    logdir = tmpdir / "logs"
    logdir.mkdir()
    stops: list[Callable[[], None]] = []
    django_ready = False
    try:
        common.say("[setup] PostgreSQL" + (" and Redis" if redis else ""))
        server_url, stop = svc.start_postgres(tmpdir, durable=True)
        stops.append(stop)
        pids = {"postgres": [postmaster_pid(tmpdir)]}
        url = common.create_database(server_url, "labbook_bench")
        redis_url = None
        if redis:
            redis_url, stop = svc.start_redis(tmpdir)
            stops.append(stop)
            base = redis_url.rsplit("/", 1)[0]
            extra = {"REDIS_URL": f"{base}/0", "CELERY_BROKER_URL": f"{base}/1"} | extra
        env = common.production_env(url, **extra)
        common.say("[setup] migrate")
        common.manage(env, "migrate", "--noinput")
        setup_django(env)
        django_ready = True
        yield Platform(tmpdir, env, url, redis_url, logdir, pids)
    finally:
        if django_ready:
            close_django()
        for stop in reversed(stops):
            stop()


def postmaster_pid(tmpdir: Path) -> int:
    pidfile = tmpdir / "postgres" / "data" / "postmaster.pid"
    return int(pidfile.read_text().split()[0])


def raise_open_files() -> int:
    """Soft open-file limit up to the hard one (children inherit it); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Program:
    """A long-running manage.py command of ours, its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", *args],
                cwd=common.ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def check_running(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"exited with {self.process.returncode}:\n{common.tail(self.log)}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=common.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=common.STOP_TIMEOUT)
        return self.process.returncode


def wait_for(check: Callable[[], object], *, timeout: float, what: str) -> object:
    from tests.support.processes import wait_until

    return wait_until(check, timeout=timeout, every=0.05, what=what)


# --- the lab, made in bulk (call after setup_django) -----------------------------------


def references(start: int, count: int) -> Iterator[str]:
    """Distinct booking references for the indexes start..start+count-1."""
    multiplier, offset = REFERENCE_SCRAMBLE
    for index in range(start, start + count):
        value = (index * multiplier + offset) % REFERENCE_SPACE
        chars = []
        for _ in range(6):
            value, digit = divmod(value, len(REFERENCE_ALPHABET))
            chars.append(REFERENCE_ALPHABET[digit])
        yield "".join(chars)


def bulk_users(prefix: str, count: int) -> list:
    from django.contrib.auth.models import User

    users = []
    for i in range(count):
        user = User(username=f"{prefix}-{i:06d}", last_name=f"Student{i}")
        user.set_unusable_password()
        users.append(user)
    return User.objects.bulk_create(users, batch_size=2000)


def make_relay(slug: str, url: str, *, secret_env: str, push: bool):
    from booking.models import Relay

    return Relay.objects.create(slug=slug, access_url=url, secret_env=secret_env, push_enabled=push)


def bulk_experiments(prefix: str, count: int, *, relay=None, streams: Iterable[str] = ()) -> list:
    """Experiments, each with the named streams on `relay` (scopes read and write)."""
    from booking.models import Experiment, Stream

    experiments = Experiment.objects.bulk_create(
        [
            Experiment(
                slug=f"{prefix}-{i:04d}", title=f"{prefix} {i}", topic_stub=f"{prefix}{i:04d}"
            )
            for i in range(count)
        ],
        batch_size=2000,
    )
    if relay is not None:
        Stream.objects.bulk_create(
            [
                Stream(experiment=e, name=name, relay=relay, scopes=["read", "write"])
                for e in experiments
                for name in streams
            ],
            batch_size=2000,
        )
    return experiments


def make_pool(slug: str, experiments: list, **policy):
    from booking.models import Pool

    pool = Pool.objects.create(slug=slug, title=slug, **policy)
    pool.experiments.add(*experiments)
    return pool


def running_bookings(
    *, pool, experiments: list, users: list, now: datetime, minutes: int, first_reference: int
) -> list:
    """One booking per experiment, started 10 s ago, ending `minutes` from now."""
    from booking.models import Booking, BookingStatus

    start = now - timedelta(seconds=10)
    end = now + timedelta(minutes=minutes)
    refs = references(first_reference, len(experiments))
    return Booking.objects.bulk_create(
        [
            Booking(
                reference=next(refs),
                user=users[i % len(users)],
                pool=pool,
                experiment=experiment,
                start=start,
                end=end,
                booked_end=end,
                status=BookingStatus.BOOKED,
                created_at=start - timedelta(hours=1),
            )
            for i, experiment in enumerate(experiments)
        ],
        batch_size=2000,
    )


def start_sessions(bookings: list, *, say_every: int = 250) -> list[dict]:
    """Start each booking's session with the same action the session API calls."""
    from django.utils import timezone

    from workflows.actions import session_start_action

    started = []
    for n, booking in enumerate(bookings, 1):
        state = session_start_action(booking=booking, by=booking.user, now=timezone.now())
        started.append({"booking": str(booking.pk), "code": state.code, "streams": state.streams})
        if n % say_every == 0:
            common.say(f"[setup] {n} sessions started")
    return started


def login_cookie(user) -> str:
    """A session key for `user`, as django.contrib.auth.login() would store it."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    session = import_module(settings.SESSION_ENGINE).SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return session.session_key


def new_secret() -> str:
    return secrets.token_urlsafe(32)


# --- queries ---------------------------------------------------------------------------


def capture_query(call: Callable[[], object], contains: str) -> tuple[str, tuple]:
    """The one SQL statement (and its parameters) holding `contains` that `call()` sends,
    as Django sends it."""
    from django.db import connection

    seen: list[tuple[str, tuple]] = []

    def wrapper(execute, sql, params, many, context):  # noqa: ANN001 - Django's signature
        if contains in sql:
            seen.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        call()
    if len(seen) != 1:
        raise RuntimeError(f"expected one statement with {contains!r}, saw {len(seen)}")
    return seen[0]


def explain(sql: str, params: tuple) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of a statement, as text."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def execution_ms(plan: str) -> float:
    """The "Execution Time" of an EXPLAIN ANALYZE text."""
    for line in plan.splitlines():
        if line.startswith("Execution Time:"):
            return float(line.split()[2])
    return math.nan


# --- timing ------------------------------------------------------------------------------


@contextlib.contextmanager
def other_load() -> Iterator[dict]:
    """Cores used inside the block by this process and everything it started ("ours":
    servers, relays, clients), and by the rest of the machine ("other"), filled in when
    the block ends. On a shared machine the second says how far to trust the figures."""
    nproc = len(os.sched_getaffinity(0))
    result: dict = {}
    with common.cpu_used({"ours": [os.getpid()]}) as used:
        yield result
    result["ours_cores"] = used["ours"]
    result["other_cores"] = max(0.0, used["machine"] * nproc - used["ours"])


def quiet(max_seconds: float, label: str) -> None:
    """Wait (at most `max_seconds`) for other programs on the machine to go quiet."""
    if max_seconds > 0:
        cores = common.wait_for_quiet(max_seconds)
        common.say(f"[{label}] other programs use {cores:.2f} cores")


def json_safe(value: object) -> object:
    """`value` with every infinite or NaN float replaced by None (strict JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def stats_ms(seconds: Iterable[float]) -> dict:
    """n, p50, p99 and max of durations given in seconds, in milliseconds."""
    values = [s * 1000 for s in seconds]
    return {
        "n": len(values),
        "p50_ms": common.percentile(values, 50),
        "p99_ms": common.percentile(values, 99),
        "max_ms": max(values, default=float("nan")),
    }


def time_calls(
    call: Callable[..., object],
    *,
    count: int,
    seconds: float,
    prepare: Callable[[], object] | None = None,
) -> list[float]:
    """Durations (s) of up to `count` calls made one after another, for at most `seconds`.
    `prepare()`'s result, if given, is passed to the call and its own time is not counted."""
    durations = []
    deadline = time.monotonic() + seconds
    for _ in range(count):
        if time.monotonic() >= deadline:
            break
        if prepare is None:
            began = time.perf_counter()
            call()
        else:
            argument = prepare()
            began = time.perf_counter()
            call(argument)
        durations.append(time.perf_counter() - began)
    return durations


class KeepAlive:
    """Sequential requests on one keep-alive connection, as a polling relay makes them."""

    def __init__(self, base_url: str, timeout: float = 30.0):
        parts = urlsplit(base_url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)

    def get(self, path: str, headers: dict[str, str]) -> tuple[int, Message, bytes]:
        """Status, headers (names in any case, as HTTP has them), body."""
        self.conn.request("GET", path, headers=headers)
        response = self.conn.getresponse()
        body = response.read()
        return response.status, response.headers, body

    def timed(
        self, path: str, headers: dict[str, str], *, count: int, seconds: float, expect: int
    ) -> tuple[list[float], int]:
        """Durations (s) of up to `count` GETs within `seconds`; and how many answered other
        than `expect`."""
        durations, wrong = [], 0
        deadline = time.monotonic() + seconds
        for _ in range(count):
            if time.monotonic() >= deadline:
                break
            began = time.perf_counter()
            status, _, _ = self.get(path, headers)
            durations.append(time.perf_counter() - began)
            wrong += status != expect
        return durations, wrong

    def close(self) -> None:
        self.conn.close()


# --- the command line -------------------------------------------------------------------------


def main(
    argv: list[str],
    *,
    doc: str,
    run: Callable[[argparse.Namespace], dict],
    report: Callable[[dict], str],
    arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None,
) -> int:
    """A live benchmark's command line: its own `arguments`, then --json and --quiet-wait;
    runs it and prints its report (or JSON)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    arguments(parser)
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0,
        help="before each phase, wait up to this many seconds for other programs to go quiet",
    )
    args = parser.parse_args(argv)
    results = run(args)
    common.emit(json_safe(results) if args.json else results, as_json=args.json, text=report)
    return 0
