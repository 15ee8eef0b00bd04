"""What an availability query costs with 1,000 and with 1,000,000 stored bookings.

PostgreSQL from scripts/services.py; one web process (uvicorn, as in production) with the
production environment of docs/operations.md. The lab: 25 pools of 4 experiments, 5,000
students in one cohort. The same "next week" is stored at both sizes: 1,000 booked slots
over the next 7 days, spread over every experiment (10 each). The large size adds 999,000
past bookings (ended, cancelled, no-shows; about two years of a 60 % occupied timetable on
every experiment), bulk loaded with COPY, so that the pool under test holds its share (4 %)
of everything stored, as a real lab's history grows. Both sizes are vacuumed and analysed
before they are measured.

At each size, for a one-day and a one-week range from now on the pool under test:

- GET /api/v1/pools/<slug>/availability/ from a logged-in client over loopback, sequential
  requests on one keep-alive connection;
- booking.selectors.pool_availability called in this process against the same database.

It prints both sizes, the ratio large / small (near-flat is the aim: every query is
bounded by an index on time), and the EXPLAIN ANALYZE of the selector's bookings query at
the large size.

With --quiet-wait SECONDS, each phase first waits (bounded) for other programs on the
machine to go quiet; the cores they used anyway are printed next to the figures.

    .venv/bin/python benchmarks/availability_cost.py           # a table
    .venv/bin/python benchmarks/availability_cost.py --json    # the same, as JSON
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402
import _live as live  # noqa: E402

POOLS = 25
PER_POOL = 4
USERS = 5000
SMALL = 1_000
LARGE = 1_000_000
WEEK_HOURS = 7 * 24
OCCUPANCY = 0.6  # of the past hours on each experiment
PAST_STATUSES = (("ended", 0.85), ("cancelled", 0.08), ("no_show", 0.07))
RANGES = {"one day": 1, "one week": 7}
CALLS = (400, 15.0)  # per measure: (count, seconds)
WARM = 20
SLUG = "pool-00"
RATIO_TARGET = 1.5
COLUMNS = (
    "id",
    "reference",
    "user_id",
    "pool_id",
    "experiment_id",
    "start",
    "end",
    "booked_end",
    "status",
    "created_at",
    "started_at",
    "cancelled_at",
    "cancelled_by_id",
    "cancel_reason",
)


# --- the lab and its bookings ----------------------------------------------------------


def make_lab() -> dict:
    from django.utils import timezone

    from booking.models import Group, Window, WindowKind

    now = timezone.now()
    users = live.bulk_users("student", USERS)
    experiments = live.bulk_experiments("kit", POOLS * PER_POOL)
    pools = []
    for p in range(POOLS):
        members = experiments[p * PER_POOL : (p + 1) * PER_POOL]
        pools.append(
            live.make_pool(
                f"pool-{p:02d}",
                members,
                min_duration=15 * 60,
                max_duration=3600,
                book_ahead=7 * 86400,
                max_bookings=2,
            )
        )
    group = Group.objects.create(slug="course", title="Course")
    group.pools.add(*pools)
    group.members.add(*users)
    windows = [
        Window(
            pool=pool,
            kind=WindowKind.ALLOWED,
            start=now - timedelta(days=730),
            end=now + timedelta(days=365),
        )
        for pool in pools
    ]
    maintenance = (now + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    windows.append(
        Window(
            pool=pools[0],
            kind=WindowKind.DENIED,
            start=maintenance,
            end=maintenance + timedelta(hours=2),
        )
    )
    Window.objects.bulk_create(windows)
    pool_of = {e.pk: pool.pk for pool in pools for e in pool.experiments.all()}
    return {
        "now": now,
        "users": [u.pk for u in users],
        "experiments": [e.pk for e in experiments],
        "pool_of": pool_of,
        "tester": users[0],
        "pool": pools[0],
    }


def _row(index: int, lab: dict, rng: random.Random, experiment: int, start: datetime, status: str):
    minutes = rng.choice((30, 45, 60))
    end = start + timedelta(minutes=minutes)
    created = start - timedelta(minutes=rng.randint(60, 7 * 1440))
    started = start + timedelta(seconds=rng.randint(0, 120)) if status == "ended" else None
    cancelled = start - timedelta(minutes=rng.randint(5, 1440)) if status == "cancelled" else None
    return (
        uuid.uuid4(),
        index,  # replaced by its reference in copy_bookings
        rng.choice(lab["users"]),
        lab["pool_of"][experiment],
        experiment,
        start,
        end,
        end,
        status,
        created,
        started,
        cancelled,
        None,
        "",
    )


def next_week(lab: dict, base: datetime):
    """SMALL booked slots in the next 7 days, the same number on every experiment."""
    rng = random.Random(1)
    per_experiment = SMALL // len(lab["experiments"])
    index = 0
    for experiment in lab["experiments"]:
        for hour in sorted(rng.sample(range(WEEK_HOURS), per_experiment)):
            yield _row(index, lab, rng, experiment, base + timedelta(hours=hour), "booked")
            index += 1


def history(lab: dict, base: datetime, large: int):
    """large - SMALL past bookings: every experiment's past hours, OCCUPANCY of them taken."""
    rng = random.Random(2)
    statuses, weights = zip(*PAST_STATUSES, strict=True)
    per_experiment = (large - SMALL) // len(lab["experiments"])
    index = SMALL
    for experiment in lab["experiments"]:
        hour = 0
        for _ in range(per_experiment):
            hour += 1
            while rng.random() > OCCUPANCY:
                hour += 1
            status = rng.choices(statuses, weights)[0]
            yield _row(index, lab, rng, experiment, base - timedelta(hours=hour), status)
            index += 1


def copy_bookings(database_url: str, rows) -> tuple[int, float]:
    """COPY the rows into booking_booking, then VACUUM ANALYZE it; (rows, seconds)."""
    import psycopg

    began = time.perf_counter()
    count = 0
    columns = ", ".join(f'"{c}"' for c in COLUMNS)
    with psycopg.connect(database_url) as conn:
        with (
            conn.cursor() as cursor,
            cursor.copy(f"COPY booking_booking ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                reference = next(live.references(row[1], 1))
                copy.write_row((row[0], reference, *row[2:]))
                count += 1
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE booking_booking")
    return count, time.perf_counter() - began


def table_facts(lab: dict) -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE pool_id = %s), "
            "pg_total_relation_size('booking_booking') FROM booking_booking",
            [lab["pool"].pk],
        )
        total, in_pool, size = cursor.fetchone()
    return {
        "bookings": total,
        "in_pool": in_pool,
        "share": in_pool / total,
        "size_mb": size / 2**20,
    }


# --- measuring ------------------------------------------------------------------------------


def measure(label: str, lab: dict, base_url: str, cookie: str) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from booking.selectors import pool_availability

    count, seconds = CALLS
    pool, tester = lab["pool"], lab["tester"]
    out: dict = {"facts": table_facts(lab)}
    client = live.KeepAlive(base_url)
    headers = {"Cookie": f"sessionid={cookie}"}
    try:
        for name, days in RANGES.items():
            common.say(f"[{label}] {name}")
            start = timezone.now().replace(microsecond=0)
            end = start + timedelta(days=days)

            def call(start: datetime = start, end: datetime = end) -> dict:
                return pool_availability(
                    pool=pool, user=tester, start=start, end=end, now=timezone.now()
                )

            for _ in range(WARM):
                call()
            selector = live.time_calls(call, count=count, seconds=seconds)
            with CaptureQueriesContext(connection) as queries:
                free = call()
            sql, params = live.capture_query(call, 'FROM "booking_booking"')
            path = f"/api/v1/pools/{pool.slug}/availability/?" + urlencode(
                {"from": start.isoformat(), "to": end.isoformat()}
            )
            status, _, body = client.get(path, headers)
            if status != 200:
                raise RuntimeError(f"availability answered {status}: {body[:300]!r}")
            client.timed(path, headers, count=WARM, seconds=seconds, expect=200)
            api, wrong = client.timed(path, headers, count=count, seconds=seconds, expect=200)
            if wrong:
                raise RuntimeError(f"{wrong} availability requests did not answer 200")
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM booking_booking WHERE pool_id = %s AND status IN "
                    "('booked', 'started') AND start < %s AND \"end\" > %s",
                    [pool.pk, end, start],
                )
                in_range = cursor.fetchone()[0]
            out[name] = {
                "selector": live.stats_ms(selector),
                "api": live.stats_ms(api),
                "queries": len(queries),
                "bookings_in_range": in_range,
                "free_intervals": len(free["any"]),
                "explain": live.explain(sql, params),
            }
    finally:
        client.close()
    return out


def run(args: argparse.Namespace) -> dict:
    results: dict = {
        "machine": common.machine(),
        "lab": {"pools": POOLS, "experiments": POOLS * PER_POOL, "users": USERS},
        "calls": CALLS,
        "ratio_target": RATIO_TARGET,
    }
    with live.platform("labbook-availability-", redis=False) as stack:
        common.say("[setup] the lab")
        lab = make_lab()
        cookie = live.login_cookie(lab["tester"])
        base = (lab["now"] + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
        rows, copy_s = copy_bookings(stack.database_url, next_week(lab, base))
        results["small_copy"] = {"rows": rows, "seconds": copy_s}
        server = common.start_web(1, stack.env, stack.logdir)
        try:
            live.quiet(args.quiet_wait, "small")
            with live.other_load() as load:
                results["small"] = measure(f"{SMALL:,}", lab, server.urls[0], cookie)
            results["small"]["load"] = load
            common.say(f"[setup] COPY {args.large - SMALL} past bookings")
            rows, copy_s = copy_bookings(stack.database_url, history(lab, base, args.large))
            results["large_copy"] = {"rows": rows, "seconds": copy_s}
            live.quiet(args.quiet_wait, "large")
            with live.other_load() as load:
                results["large"] = measure(f"{args.large:,}", lab, server.urls[0], cookie)
            results["large"]["load"] = load
            server.check_running()
        finally:
            server.stop()
    results["ratio"] = {
        name: {
            kind: results["large"][name][kind]["p50_ms"] / results["small"][name][kind]["p50_ms"]
            for kind in ("selector", "api")
        }
        for name in RANGES
    }
    return results


def report(results: dict) -> str:
    m = results["machine"]
    lab = results["lab"]
    small, large = results["small"], results["large"]
    lines = [
        f"Availability cost -- {m['date']}, {m['nproc']} cores, {m['cpu']}, Python {m['python']}, "
        f"code {m['code']}",
        f"{lab['pools']} pools, {lab['experiments']} experiments, {lab['users']} students; pool "
        f"under test {SLUG} (4 experiments)",
        f"stored: {small['facts']['bookings']:,} bookings ({small['facts']['size_mb']:.1f} MB), "
        f"then {large['facts']['bookings']:,} ({large['facts']['size_mb']:.0f} MB; pool under "
        f"test {large['facts']['share']:.1%}); COPY of {results['large_copy']['rows']:,} rows "
        f"and VACUUM ANALYZE in {results['large_copy']['seconds']:.0f} s",
        "",
    ]
    rows = []
    for name in RANGES:
        for kind, label in (
            ("api", "GET availability over HTTP"),
            ("selector", "selector in process"),
        ):
            a, b = small[name][kind], large[name][kind]
            ratio = results["ratio"][name][kind]
            rows.append(
                {
                    "what": f"{name}: {label}",
                    "small": f"{a['p50_ms']:.2f} / {a['p99_ms']:.2f}",
                    "large": f"{b['p50_ms']:.2f} / {b['p99_ms']:.2f}",
                    "ratio": ratio,
                    "queries": small[name]["queries"] if kind == "selector" else "",
                    "target": f"< {RATIO_TARGET} ({'met' if ratio < RATIO_TARGET else 'MISSED'})",
                }
            )
    columns = [
        ("what", "what", ""),
        (f"{small['facts']['bookings']:,} stored: p50 / p99 ms", "small", ""),
        (f"{large['facts']['bookings']:,} stored: p50 / p99 ms", "large", ""),
        ("ratio of p50", "ratio", ".2f"),
        ("SQL queries", "queries", ""),
        ("target", "target", ""),
    ]
    lines += [common.table(rows, columns), ""]
    lines.append(
        f"other programs used {small['load']['other_cores']:.2f} / "
        f"{large['load']['other_cores']:.2f} cores while each size was measured"
    )
    for name in RANGES:
        lines.append(
            f"{name}: {small[name]['bookings_in_range']} / {large[name]['bookings_in_range']} "
            f"active bookings of the pool in the range, {small[name]['free_intervals']} / "
            f"{large[name]['free_intervals']} free intervals (small / large)"
        )
    lines += [
        "",
        f"EXPLAIN ANALYZE of the bookings query, one week, {large['facts']['bookings']:,} stored:",
        "",
        large["one week"]["explain"],
    ]
    return "\n".join(lines)


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--large", type=int, default=LARGE, help="bookings stored at the large size"
    )


def main(argv: list[str]) -> int:
    return live.main(argv, doc=__doc__, run=run, report=report, arguments=arguments)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
