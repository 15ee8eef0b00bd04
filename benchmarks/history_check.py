"""A history check of concurrent booking: many clients, real web processes, then a verdict.

Clients (aiohttp, each a logged-in student with a session cookie and CSRF header) race for
a small grid of slots on three experiments: they book (one experiment, or any), cancel
their own bookings and list them. Every attempt is logged with the time it was sent
(invoke), the time its answer came back (complete) and the answer. Afterwards the history
and the database are checked:

- no two confirmed bookings of an experiment overlap, unless the earlier one was cancelled
  by a cancel sent before the later one was answered (so at no moment were both active);
- every confirmed booking is in the database as confirmed, and readable by its owner;
- every refused booking left nothing (every row is some confirmed booking);
- a slot_taken refusal names a real cause: some booking of that experiment (of every
  experiment, for "any") overlapped, was made before the refusal was answered and was not
  cancelled before it was sent;
- a confirmed cancel is a cancelled row; a list shows every booking its client had
  confirmed (and not cancelled) before sending it.

The servers run with production settings on a private database made for the run: a SQLite
file (the embedded default) or a private PostgreSQL server (scripts/services.py), with
`manage.py migrate`. Everything runs on loopback and every loop is bounded.

    .venv/bin/python benchmarks/history_check.py                      # SQLite, then PostgreSQL
    .venv/bin/python benchmarks/history_check.py --backend postgres --clients 32 --seconds 30
    .venv/bin/python benchmarks/history_check.py --json
"""

# Starting this project's own programs with argument lists is part of the job.
# ruff: noqa: S603

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
START_TIMEOUT = 60.0
REQUEST_TIMEOUT = 30.0
EXPERIMENTS = ("pend00", "pend01", "pend02")
SLOT = timedelta(minutes=5)
SLOTS = 24  # two hours of 5-minute slots: plenty of races
SEED = """
import json, os
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.conf import settings
from web.login_sessions import SessionStore
from booking.models import Experiment, Group, Pool, Relay, Stream

relay = Relay.objects.create(
    slug="relay-a", access_url="http://127.0.0.1:9/relay-a/access", secret_env="HISTORY_SECRET"
)
pool = Pool.objects.create(
    slug="pendulums", title="Pendulums", min_duration=300, max_duration=3600,
    max_bookings=100000, grace_period=3600,
)
group = Group.objects.create(slug="racers", title="Racers")
group.pools.add(pool)
for slug in os.environ["HISTORY_EXPERIMENTS"].split(","):
    experiment = Experiment.objects.create(slug=slug, title=slug, topic_stub=slug)
    Stream.objects.create(experiment=experiment, name="data", relay=relay, scopes=["read"])
    pool.experiments.add(experiment)
out = []
for i in range(int(os.environ["HISTORY_USERS"])):
    user = User(username=f"racer{i}", last_name=f"Racer{i}")
    user.set_unusable_password()  # sessions are made here: no password hashing per client
    user.save()
    group.members.add(user)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    out.append({"name": user.username, "id": user.pk, "session": session.session_key})
print(json.dumps(out))
"""


say = common.say
# --- servers ----------------------------------------------------------------------------------


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
    return keep | {
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": HOST,
        "DATABASE_URL": database_url,
        "JOBS_IN_PROCESS": "0",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        "HISTORY_SECRET": secrets.token_hex(32),
        **extra,
    }


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stderr[-3000:]}")
    return done.stdout


@dataclass
class Servers:
    urls: list[str]
    processes: list[subprocess.Popen] = field(default_factory=list)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


def start_daphne(count: int, env: dict[str, str], logdir: Path) -> Servers:
    servers = Servers([])
    try:
        for _ in range(count):
            port = common.free_port()
            log = (logdir / f"daphne-{port}.log").open("ab")
            servers.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "daphne", "-b", HOST, "-p", str(port)]
                    + ["config.asgi:application"],
                    cwd=ROOT,
                    env=env | {"PLATFORM_URL": f"http://{HOST}:{port}"},
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            )
            servers.urls.append(f"http://{HOST}:{port}")
        for process, url in zip(servers.processes, servers.urls, strict=True):
            wait_listening(process, url)
    except BaseException:
        servers.stop()
        raise
    return servers


def wait_listening(process: subprocess.Popen, url: str) -> None:
    port = int(url.rsplit(":", 1)[1])
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne on {url} exited with {process.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"daphne on {url} did not listen within {START_TIMEOUT} s")


# --- the history -----------------------------------------------------------------------------


@dataclass
class Attempt:
    client: str
    op: str  # book, cancel, list, read
    invoked: float
    completed: float = 0.0
    status: int | None = None
    answer: object = None
    error: str = ""
    experiment: str | None = None
    start: str = ""
    end: str = ""
    booking: str = ""  # the booking a cancel or read names


class Client:
    def __init__(self, user: dict, urls: list[str], http: aiohttp.ClientSession) -> None:
        self.user = user
        self.urls = urls
        self.http = http
        self.csrf = secrets.token_hex(16)
        self.cookies = {"sessionid": user["session"], "csrftoken": self.csrf}
        self.mine: list[str] = []

    async def call(self, attempt: Attempt, method: str, path: str, body: dict | None = None):
        url = random.choice(self.urls) + path
        headers = {"X-CSRFToken": self.csrf, "Referer": url}
        try:
            async with self.http.request(
                method, url, json=body, headers=headers, cookies=self.cookies
            ) as response:
                attempt.status = response.status
                text = await response.text()
                try:
                    attempt.answer = json.loads(text) if text else None
                except ValueError:
                    attempt.answer = text[:300]
        except (aiohttp.ClientError, TimeoutError) as error:
            attempt.error = f"{type(error).__name__}: {error}"
        attempt.completed = time.monotonic()
        return attempt


async def run_client(
    client: Client, history: list[Attempt], *, base: datetime, deadline: float, limit: int
) -> None:
    rng = random.Random(client.user["id"])
    for _ in range(limit):
        if time.monotonic() >= deadline:
            return
        roll = rng.random()
        if roll < 0.7 or not client.mine:
            start = base + SLOT * rng.randrange(SLOTS)
            end = start + SLOT * rng.choice((1, 1, 2, 3, 4))
            experiment = rng.choice((*EXPERIMENTS, None))
            body = {"pool": "pendulums", "start": iso(start), "end": iso(end)}
            if experiment:
                body["experiment"] = experiment
            attempt = Attempt(
                client.user["name"],
                "book",
                time.monotonic(),
                experiment=experiment,
                start=iso(start),
                end=iso(end),
            )
            history.append(attempt)
            await client.call(attempt, "POST", "/api/v1/bookings/", body)
            if attempt.status == 201:
                client.mine.append(attempt.answer["id"])
        elif roll < 0.9:
            booking = rng.choice(client.mine)
            attempt = Attempt(client.user["name"], "cancel", time.monotonic(), booking=booking)
            history.append(attempt)
            await client.call(attempt, "POST", f"/api/v1/bookings/{booking}/cancel/")
            if attempt.status == 200 and rng.random() < 0.8:  # now and then cancel it again
                client.mine.remove(booking)
        else:
            attempt = Attempt(client.user["name"], "list", time.monotonic())
            history.append(attempt)
            await client.call(attempt, "GET", "/api/v1/bookings/")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- the database afterwards ---------------------------------------------------------------


def read_rows(database_url: str) -> list[dict]:
    query = (
        'SELECT b.id, b.user_id, b.start, b."end", b.status, e.slug AS experiment '
        "FROM booking_booking b JOIN booking_experiment e ON e.id = b.experiment_id"
    )
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
            db.row_factory = sqlite3.Row
            rows = [dict(r) for r in db.execute(query)]
        for row in rows:
            row["id"] = str(uuid.UUID(row["id"]))
            for name in ("start", "end"):
                row[name] = datetime.fromisoformat(row[name]).replace(tzinfo=UTC)
        return rows
    import psycopg
    import psycopg.rows

    with psycopg.connect(database_url, row_factory=psycopg.rows.dict_row) as db:
        rows = db.execute(query).fetchall()
    return [{**r, "id": str(r["id"])} for r in rows]


# --- the checker ---------------------------------------------------------------------------


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def overlap(a_start, a_end, b_start, b_end) -> bool:
    return a_start < b_end and b_start < a_end


def check(history: list[Attempt], rows: list[dict], users: dict[str, int]) -> dict[str, list]:
    """Every violation of the rules above, by rule (empty lists: the history is sound)."""
    problems: dict[str, list] = {
        "double booking": [],
        "confirmed but missing or different": [],
        "row no confirmed attempt explains": [],
        "refusal without a cause": [],
        "cancel confirmed but not cancelled": [],
        "list misses a booking": [],
        "server error": [],
    }
    books = [a for a in history if a.op == "book"]
    confirmed = {a.answer["id"]: a for a in books if a.status == 201}
    unknown = [a for a in books if a.status is None]  # no answer: may or may not be written
    cancels: dict[str, list[Attempt]] = {}
    for a in history:
        if a.op == "cancel":
            cancels.setdefault(a.booking, []).append(a)
        if a.status is not None and a.status >= 500:
            problems["server error"].append(asdict(a))
    rows_by_id = {r["id"]: r for r in rows}

    def cancel_sent_before(booking: str, moment: float) -> bool:
        return any(c.invoked < moment for c in cancels.get(booking, []) if c.status != 404)

    def cancel_done_before(booking: str, moment: float) -> bool:
        return any(c.completed < moment for c in cancels.get(booking, []) if c.status == 200)

    for booking_id, a in confirmed.items():
        row = rows_by_id.get(booking_id)
        expected = (users[a.client], parse(a.start), parse(a.end))
        if row is None or (row["user_id"], row["start"], row["end"]) != expected:
            problems["confirmed but missing or different"].append((asdict(a), row))
        elif a.experiment and row["experiment"] != a.experiment:
            problems["confirmed but missing or different"].append((asdict(a), row))
    unknown_keys = {(users[a.client], parse(a.start), parse(a.end)) for a in unknown}
    for booking_id, row in rows_by_id.items():
        if booking_id not in confirmed and (
            (row["user_id"], row["start"], row["end"]) not in unknown_keys
        ):
            problems["row no confirmed attempt explains"].append(row)

    # Two confirmed bookings of one experiment that overlap: the earlier one must have been
    # cancelled by a cancel sent before the later booking was answered.
    by_experiment: dict[str, list[str]] = {}
    for booking_id in confirmed:
        if booking_id in rows_by_id:
            by_experiment.setdefault(rows_by_id[booking_id]["experiment"], []).append(booking_id)
    for ids in by_experiment.values():
        for i, one in enumerate(ids):
            for other in ids[i + 1 :]:
                a, b = rows_by_id[one], rows_by_id[other]
                if not overlap(a["start"], a["end"], b["start"], b["end"]):
                    continue
                # Sound if one of them may have been cancelled before the other was made.
                if not (
                    cancel_sent_before(one, confirmed[other].completed)
                    or cancel_sent_before(other, confirmed[one].completed)
                ):
                    problems["double booking"].append((one, other))

    # A slot_taken refusal: every candidate experiment had a booking in the way.
    for a in books:
        if a.status != 409 or not isinstance(a.answer, dict):
            continue
        if a.answer.get("code") != "slot_taken":
            continue
        start, end = parse(a.start), parse(a.end)
        candidates = [a.experiment] if a.experiment else list(EXPERIMENTS)
        for experiment in candidates:
            in_the_way = [
                booking_id
                for booking_id, b in confirmed.items()
                if (row := rows_by_id.get(booking_id)) is not None
                and row["experiment"] == experiment
                and overlap(start, end, row["start"], row["end"])
                and b.invoked < a.completed
                and not cancel_done_before(booking_id, a.invoked)
            ]
            possible = [
                u
                for u in unknown
                if u.invoked < a.completed
                and u.experiment in (experiment, None)
                and overlap(start, end, parse(u.start), parse(u.end))
            ]
            if not in_the_way and not possible:
                problems["refusal without a cause"].append((asdict(a), experiment))
                break

    for booking_id, attempts in cancels.items():
        if any(c.status == 200 for c in attempts):
            row = rows_by_id.get(booking_id)
            if row is None or row["status"] != "cancelled":
                problems["cancel confirmed but not cancelled"].append((booking_id, row))

    for a in history:
        if a.op != "list" or a.status != 200:
            continue
        listed = {b["id"] for b in a.answer}
        for booking_id, b in confirmed.items():
            if b.client != a.client or b.completed >= a.invoked:
                continue
            if cancel_sent_before(booking_id, a.completed):
                continue
            if parse(b.end) <= datetime.now(UTC):
                continue
            if booking_id not in listed:
                problems["list misses a booking"].append((booking_id, asdict(a)))
    return problems


async def read_back(confirmed: dict[str, Attempt], clients: dict[str, Client]) -> list[Attempt]:
    """Every confirmed booking, read by its owner through the API."""
    reads = []
    for booking_id, a in confirmed.items():
        attempt = Attempt(a.client, "read", time.monotonic(), booking=booking_id)
        reads.append(
            await clients[a.client].call(attempt, "GET", f"/api/v1/bookings/{booking_id}/")
        )
    return reads


# --- one run ----------------------------------------------------------------------------------


def prepare_database(backend: str, workdir: Path) -> tuple[str, Callable[[], None]]:
    if backend == "sqlite":
        return f"sqlite:///{workdir / 'history.sqlite3'}", lambda: None
    module = common.services()
    server_url, stop = module.start_postgres(workdir, durable=True)
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as db:
        db.execute("CREATE DATABASE history")
    return server_url.rsplit("/", 1)[0] + "/history", stop


async def drive(
    users: list[dict], urls: list[str], *, seconds: float, limit: int
) -> tuple[list[Attempt], list[Attempt], dict[str, Client]]:
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    connector = aiohttp.TCPConnector(limit=len(users) * 2)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        clients = {u["name"]: Client(u, urls, http) for u in users}
        history: list[Attempt] = []
        base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=30)
        deadline = time.monotonic() + seconds
        await asyncio.gather(
            *(
                run_client(c, history, base=base, deadline=deadline, limit=limit)
                for c in clients.values()
            )
        )
        confirmed = {a.answer["id"]: a for a in history if a.op == "book" and a.status == 201}
        reads = await read_back(confirmed, clients)
    return history, reads, clients


def run(backend: str, *, clients: int, seconds: float, processes: int, limit: int) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"history-{backend}-"))
    database_url, stop_database = prepare_database(backend, workdir)
    env = server_env(
        database_url, HISTORY_USERS=str(clients), HISTORY_EXPERIMENTS=",".join(EXPERIMENTS)
    )
    servers = None
    try:
        say(f"[{backend}] migrate and seed")
        manage(env, "migrate", "--verbosity", "0")
        users = json.loads(manage(env, "shell", "-c", SEED).strip().splitlines()[-1])
        servers = start_daphne(processes, env, workdir)
        say(f"[{backend}] {clients} clients on {processes} daphne process(es) for {seconds} s")
        began = time.monotonic()
        history, reads, _ = asyncio.run(drive(users, servers.urls, seconds=seconds, limit=limit))
        elapsed = time.monotonic() - began
        rows = read_rows(database_url)
        problems = check(history, rows, {u["name"]: u["id"] for u in users})
        problems["confirmed but not readable"] = [
            asdict(r) for r in reads if r.status != 200 or r.answer.get("id") != r.booking
        ]
        outcomes = Counter(
            f"{a.op} {a.status}"
            + (f" {a.answer.get('code')}" if isinstance(a.answer, dict) and a.status >= 400 else "")
            if a.status is not None
            else f"{a.op} {a.error.split(':')[0]}"
            for a in history
        )
        latencies = sorted(a.completed - a.invoked for a in history if a.status is not None)
        return {
            "backend": backend,
            "processes": processes,
            "clients": clients,
            "attempts": len(history),
            "seconds": round(elapsed, 1),
            "per second": round(len(history) / elapsed, 1),
            "p50 ms": round(1000 * latencies[len(latencies) // 2], 1) if latencies else None,
            "p99 ms": round(1000 * latencies[int(len(latencies) * 0.99)], 1) if latencies else None,
            "rows": len(rows),
            "outcomes": dict(sorted(outcomes.items())),
            "violations": {name: len(items) for name, items in problems.items()},
            "examples": {name: items[:3] for name, items in problems.items() if items},
        }
    finally:
        if servers is not None:
            servers.stop()
        stop_database()
        shutil.rmtree(workdir, ignore_errors=True)


def text(result: dict) -> str:
    lines = [
        f"{result['backend']}: {result['attempts']} attempts by {result['clients']} clients on "
        f"{result['processes']} daphne process(es) in {result['seconds']} s "
        f"({result['per second']}/s, p50 {result['p50 ms']} ms, p99 {result['p99 ms']} ms), "
        f"{result['rows']} rows",
        "  outcomes: " + ", ".join(f"{k}: {v}" for k, v in result["outcomes"].items()),
    ]
    bad = {k: v for k, v in result["violations"].items() if v}
    lines.append("  verdict: " + ("sound" if not bad else f"VIOLATIONS {bad}"))
    for name, items in result["examples"].items():
        lines.append(f"  {name}: {json.dumps(items, default=str)[:1500]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--clients", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--processes", type=int, default=2, help="daphne processes")
    parser.add_argument("--limit", type=int, default=2000, help="attempts per client, at most")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    results = [
        run(
            backend,
            clients=args.clients,
            seconds=args.seconds,
            processes=args.processes,
            limit=args.limit,
        )
        for backend in backends
    ]
    common.save(results)
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        print("\n".join(text(r) for r in results))
    return 1 if any(any(r["violations"].values()) for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
