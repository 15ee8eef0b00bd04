"""How fast a cancelled session's relay connection is dropped, and what the feed costs.

The whole chain runs live on loopback: one web process (uvicorn, as in production) with the
production environment of docs/operations.md (PostgreSQL and Redis from
scripts/services.py), two practable-style test relays (tests/support/practable_relay.py),
and, for the poll-only mode, the relay agent (`manage.py relay_agent`, its default interval
of 5 s). Each cancellation: a started session's data stream is opened through the relay
(token POSTed raw, websocket on the one-time URI), the session is cancelled through the API
(POST /api/v1/session/cancel/ with the session code), and the time is taken from the cancel
response arriving to the relay dropping the websocket.

- push: the relay row has push enabled; the web process calls /bids/deny after the commit;
- poll-only: push disabled on the relay row; only the agent, polling the feed, tells it.

Connections are opened in batches of 40; a batch's cancels come at random times within
one agent interval (5 s, about 8 cancels a second), so that for poll-only they land at
every phase of the agent's cycle. Push also gets one burst: 40 cancels within 2 s. The
bookings and sessions are made beforehand in this process (the ORM, and the action the
session API calls). After each drop the stream token must be refused by the relay.

Then the feed's server cost: an unchanged poll (If-None-Match, 304) measured from a client
over many sequential keep-alive requests, and in this process (the view called with
RequestFactory, and the whole Django stack through its WSGI handler) against the same
database; and a 10,000-entry snapshot (GET without `since`) for a relay holding 10,000
revocations (bulk inserts shaped as revocation_publish writes them), split into the query
with its row conversion and the JSON encoding.

With --quiet-wait SECONDS, each phase first waits (bounded) for other programs on the
machine to go quiet; the cores they used anyway are printed next to the figures.

    .venv/bin/python benchmarks/revocation_latency.py           # a table
    .venv/bin/python benchmarks/revocation_latency.py --json    # the same, as JSON
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402
import _live as live  # noqa: E402

CANCELS = 200  # per mode
BATCH = 40  # connections open at once
AGENT_INTERVAL = 5.0  # the agent's default (RELAY_AGENT_INTERVAL), not passed to it
SPREAD = AGENT_INTERVAL  # a batch's cancels come at random within this many seconds
BURST = (40, 2.0)  # and once, for push: this many cancels within this many seconds
DROP_TIMEOUT = 20.0  # after the last cancel of a batch
SESSION_MINUTES = 60
FEED_PATH = "/api/v1/relay/revocations/"
CANCEL_PATH = "/api/v1/session/cancel/"
POLLS = (3000, 20.0)  # sequential 304 polls over HTTP: (count, seconds)
IN_PROCESS_POLLS = (5000, 10.0)
SNAPSHOT_ENTRIES = 10_000
SNAPSHOTS = (40, 20.0)
SECRET_ENV = "BENCH_RELAY_SECRET"
TARGETS = {
    "push_p99_ms": 250.0,
    "poll_p99_ms": (AGENT_INTERVAL + 1) * 1000,
    "not_modified_ms": 5.0,
    "snapshot_ms": 100.0,
}


# --- the client side of one cancellation ----------------------------------------------


async def open_through_relay(http, stream: dict):
    """What a UI does: POST the token, raw, to the stream's URL; open the one-time URI."""
    async with http.post(stream["url"], headers={"Authorization": stream["token"]}) as response:
        body = await response.text()
        if response.status != 200:
            raise RuntimeError(f"relay refused a fresh token: {response.status} {body[:200]}")
    ws = await http.ws_connect(json.loads(body)["uri"], autoping=True)
    first = await ws.receive(timeout=10)
    if first.type.name != "TEXT":
        raise RuntimeError(f"the relay sent no data on a fresh connection: {first.type}")
    return ws


async def dropped_at(ws) -> float:
    """Reads until the relay drops the connection; when that happened (monotonic)."""
    async for _ in ws:  # heartbeats from the relay, every 100 ms
        pass
    return time.monotonic()


async def refused(http, stream: dict) -> bool:
    async with http.post(stream["url"], headers={"Authorization": stream["token"]}) as response:
        await response.read()
        return response.status == 400


async def cancel_batch(http, base_url: str, batch: list[dict], spread: float) -> list[dict]:
    sockets = await asyncio.gather(*(open_through_relay(http, s["stream"]) for s in batch))
    watchers = [asyncio.create_task(dropped_at(ws)) for ws in sockets]
    began = time.monotonic()
    offsets = [random.uniform(0, spread) for _ in batch]  # a spread, not a secret

    async def cancel(session: dict, offset: float) -> dict:
        await asyncio.sleep(max(0.0, began + offset - time.monotonic()))
        sent = time.monotonic()
        async with http.post(
            base_url + CANCEL_PATH,
            json={},
            headers={"Authorization": f"Bearer {session['code']}"},
        ) as response:
            body = await response.json(content_type=None)
        answered = time.monotonic()
        if response.status != 200 or body.get("status") != "cancelled":
            raise RuntimeError(f"cancel answered {response.status}: {body}")
        return {"sent": sent, "answered": answered}

    results = await asyncio.gather(*(cancel(s, o) for s, o in zip(batch, offsets, strict=True)))
    deadline = time.monotonic() + DROP_TIMEOUT
    for watcher, result in zip(watchers, results, strict=True):
        try:
            result["dropped"] = await asyncio.wait_for(
                asyncio.shield(watcher), max(0.01, deadline - time.monotonic())
            )
        except TimeoutError:
            result["dropped"] = None
    for watcher in watchers:
        watcher.cancel()
    checks = await asyncio.gather(*(refused(http, s["stream"]) for s in batch))
    for result, was_refused in zip(results, checks, strict=True):
        result["refused_after"] = was_refused
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return results


async def cancel_all(base_url: str, sessions: list[dict], spread: float, label: str) -> list:
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=30)
    results: list[dict] = []
    async with aiohttp.ClientSession(
        timeout=timeout, connector=aiohttp.TCPConnector(limit=0)
    ) as http:
        for start in range(0, len(sessions), BATCH):
            batch = sessions[start : start + BATCH]
            results += await cancel_batch(http, base_url, batch, spread)
            common.say(f"[{label}] {len(results)}/{len(sessions)} cancelled")
    return results


def summarise(results: list[dict]) -> dict:
    """Percentiles over every cancellation: one never dropped counts as infinitely late."""
    never = float("inf")
    return {
        "cancels": len(results),
        "dropped": sum(r["dropped"] is not None for r in results),
        "refused_after": sum(r["refused_after"] for r in results),
        "from_response": live.stats_ms(
            never if r["dropped"] is None else r["dropped"] - r["answered"] for r in results
        ),
        "from_request": live.stats_ms(
            never if r["dropped"] is None else r["dropped"] - r["sent"] for r in results
        ),
        "cancel_api": live.stats_ms(r["answered"] - r["sent"] for r in results),
    }


# --- the lab ----------------------------------------------------------------------------


def make_lab(push_url: str, poll_url: str, cancels: int) -> dict:
    """Running bookings with started sessions: for push (relay row pushing), for the push
    burst, and for poll-only (relay row not pushing); each experiment streams `data`."""
    from django.utils import timezone

    now = timezone.now()
    relays = {
        "push": live.make_relay("bench-push", push_url, secret_env=SECRET_ENV, push=True),
        "poll": live.make_relay("bench-poll", poll_url, secret_env=SECRET_ENV, push=False),
    }
    users = live.bulk_users("bench-student", 100)
    sizes = {"push": cancels, "burst": BURST[0], "poll": cancels}
    experiments = {
        name: live.bulk_experiments(
            name, size, relay=relays["poll" if name == "poll" else "push"], streams=["data"]
        )
        for name, size in sizes.items()
    }
    pool = live.make_pool("bench", sum(experiments.values(), []), max_duration=2 * 3600)
    sessions, first = {}, 0
    for name, rows in experiments.items():
        bookings = live.running_bookings(
            pool=pool,
            experiments=rows,
            users=users,
            now=now,
            minutes=SESSION_MINUTES,
            first_reference=first,
        )
        first += len(rows)
        common.say(f"[setup] starting {len(bookings)} {name} sessions")
        sessions[name] = [
            {"code": s["code"], "stream": s["streams"][0]} for s in live.start_sessions(bookings)
        ]
    return {"relays": relays, "sessions": sessions}


def relay_token(relay) -> str:
    from django.utils import timezone

    from relay_control.api_tokens import relay_token_create

    return relay_token_create(relay=relay, now=timezone.now(), name="benchmark")[1]


def delivery_states(relay) -> dict[str, int]:
    from django.db.models import Count

    from relay_control.models import RevocationDelivery

    rows = RevocationDelivery.objects.filter(relay=relay).values("state").annotate(n=Count("id"))
    return {row["state"]: row["n"] for row in rows}


# --- the feed's cost ------------------------------------------------------------------------


def bulk_revocations(relay, count: int) -> None:
    """`count` revocations for one relay, as revocation_publish writes them (seq from the
    locked counter, one delivery row per relay), inserted in bulk."""
    from django.db import transaction
    from django.utils import timezone

    from relay_control.models import Revocation, RevocationCounter, RevocationDelivery

    now = timezone.now()
    rng = random.Random(7)
    with transaction.atomic():
        counter, _ = RevocationCounter.objects.select_for_update().get_or_create(pk=1)
        first = counter.value + 1
        counter.value += count
        counter.save(update_fields=["value"])
        revocations = Revocation.objects.bulk_create(
            [
                Revocation(
                    seq=first + i,
                    booking_id=uuid.uuid4(),
                    token_ids=[uuid.uuid4().hex, uuid.uuid4().hex],
                    exp=now + timedelta(minutes=rng.randint(10, 120)),
                    revoked_at=now - timedelta(seconds=rng.randint(0, 3600)),
                    reason="cancelled",
                )
                for i in range(count)
            ],
            batch_size=2000,
        )
        RevocationDelivery.objects.bulk_create(
            [
                RevocationDelivery(
                    revocation=r,
                    relay=relay,
                    state=RevocationDelivery.State.NOT_PUSHED,
                    next_attempt_at=now,
                )
                for r in revocations
            ],
            batch_size=2000,
        )


class FeedCalls:
    """The feed called in this process: the view alone, and the whole Django stack."""

    def __init__(self, token: str):
        from django.core.handlers.wsgi import WSGIHandler
        from django.test import RequestFactory

        self.token = token
        self.factory = RequestFactory(HTTP_HOST=common.HOST)
        self.wsgi = WSGIHandler()

    def request(self, etag: str | None):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {self.token}"}
        if etag:
            headers["HTTP_IF_NONE_MATCH"] = etag
        return self.factory.get(FEED_PATH, **headers)

    def view(self, request) -> int:
        from relay_control.views import revocation_feed

        return revocation_feed(request).status_code

    def handler(self, etag: str | None) -> int:
        environ = self.request(etag).environ
        status: list[str] = []
        response = self.wsgi(environ, lambda s, h, exc_info=None: status.append(s))
        b"".join(response)
        response.close()  # request_finished: the connection goes back to the pool
        return int(status[0].split()[0])

    def queries(self, etag: str | None) -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            self.view(self.request(etag))
        return len(captured)


def not_modified_cost(base_url: str, token: str, label: str) -> dict:
    calls = FeedCalls(token)
    client = live.KeepAlive(base_url)
    try:
        headers = {"Authorization": f"Bearer {token}"}
        status, answer, _ = client.get(FEED_PATH, headers)
        if status != 200:
            raise RuntimeError(f"feed answered {status}")
        etag = answer["ETag"]
        headers["If-None-Match"] = etag
        common.say(f"[feed] 304 polls over HTTP ({label})")
        count, seconds = POLLS
        durations, wrong = client.timed(
            FEED_PATH, headers, count=count, seconds=seconds, expect=304
        )
    finally:
        client.close()
    if wrong:
        raise RuntimeError(f"{wrong} polls did not answer 304")
    common.say(f"[feed] 304 polls in process ({label})")
    count, seconds = IN_PROCESS_POLLS
    view = live.time_calls(
        calls.view, count=count, seconds=seconds, prepare=lambda: calls.request(etag)
    )
    stack = live.time_calls(lambda: calls.handler(etag), count=count, seconds=seconds)
    if calls.view(calls.request(etag)) != 304 or calls.handler(etag) != 304:
        raise RuntimeError("the in-process poll did not answer 304")
    return {
        "etag": etag,
        "http": live.stats_ms(durations),
        "view": live.stats_ms(view),
        "stack": live.stats_ms(stack),
        "queries": calls.queries(etag),
    }


def snapshot_cost(base_url: str, relay, token: str) -> dict:
    from relay_control.feed import feed_cursor, feed_entries_json

    common.say(f"[feed] {SNAPSHOT_ENTRIES} revocations for one relay")
    began = time.perf_counter()
    bulk_revocations(relay, SNAPSHOT_ENTRIES)
    inserted_s = time.perf_counter() - began
    calls = FeedCalls(token)
    client = live.KeepAlive(base_url)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        status, _, body = client.get(FEED_PATH, headers)
        data = json.loads(body)
        if status != 200 or len(data["entries"]) != SNAPSHOT_ENTRIES or not data["snapshot"]:
            raise RuntimeError(f"snapshot: {status}, {len(data.get('entries', []))} entries")
        count, seconds = SNAPSHOTS
        common.say("[feed] snapshots over HTTP")
        durations, wrong = client.timed(
            FEED_PATH, headers, count=count, seconds=seconds, expect=200
        )
    finally:
        client.close()
    if wrong:
        raise RuntimeError(f"{wrong} snapshot GETs did not answer 200")
    common.say("[feed] snapshots in process")
    # As a web process runs the view: config/wsgi.py and config/asgi.py freeze what is
    # loaded at start-up, so that full garbage collections skip it.
    gc.collect()
    gc.freeze()
    view = live.time_calls(
        calls.view, count=count, seconds=seconds, prepare=lambda: calls.request(None)
    )
    cursor = feed_cursor().value
    entries_only = live.time_calls(
        lambda: feed_entries_json(relay_id=relay.pk, since=None, upto=cursor),
        count=count,
        seconds=seconds,
    )
    sql, params = live.capture_query(
        lambda: feed_entries_json(relay_id=relay.pk, since=None, upto=cursor),
        "relay_control_revocation",
    )
    in_database = [live.execution_ms(live.explain(sql, params)) for _ in range(5)]
    return {
        "entries": SNAPSHOT_ENTRIES,
        "bytes": len(body),
        "insert_s": inserted_s,
        "http": live.stats_ms(durations),
        "view": live.stats_ms(view),
        "query_and_rows": live.stats_ms(entries_only),
        "in_database_ms": sorted(in_database)[len(in_database) // 2],
        "queries": calls.queries(None),
    }


# --- a whole run ----------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict:
    from tests.support.processes import start_test_relay

    secret = live.new_secret()
    results: dict = {
        "machine": common.machine(),
        "cancels_per_mode": args.cancels,
        "batch": BATCH,
        "agent_interval_s": AGENT_INTERVAL,
        "targets": TARGETS,
    }
    with live.platform("labbook-revocation-", redis=True, **{SECRET_ENV: secret}) as stack:
        relays = []
        server = agent = None
        try:
            relays = [start_test_relay(secret=secret), start_test_relay(secret=secret)]
            push_url, poll_url = relays[0].url, relays[1].url
            lab = make_lab(push_url, poll_url, args.cancels)
            server = common.start_web(1, stack.env, stack.logdir)
            base_url = server.urls[0]

            common.say("[push] cancelling")
            live.quiet(args.quiet_wait, "push")
            with live.other_load() as load:
                pushed = asyncio.run(cancel_all(base_url, lab["sessions"]["push"], SPREAD, "push"))
            results["push"] = summarise(pushed) | {"spread_s": SPREAD, **load}
            live.quiet(args.quiet_wait, "burst")
            common.say("[push] a burst")
            with live.other_load() as load:
                burst = asyncio.run(
                    cancel_all(base_url, lab["sessions"]["burst"], BURST[1], "burst")
                )
            results["burst"] = summarise(burst) | {"spread_s": BURST[1], **load}
            results["push_deliveries"] = delivery_states(lab["relays"]["push"])

            token = relay_token(lab["relays"]["poll"])
            agent = live.Program(
                [
                    "relay_agent",
                    "--feed",
                    base_url,
                    "--token-env",
                    "BENCH_FEED_TOKEN",
                    "--relay",
                    poll_url,
                    "--relay-secret-env",
                    SECRET_ENV,
                ],
                stack.env | {"BENCH_FEED_TOKEN": token, "LOG_LEVEL": "INFO"},
                stack.logdir / "relay-agent.log",
            )
            # Its first cycle (a snapshot) marks the token as used.
            from relay_control.models import RelayApiToken

            live.wait_for(
                lambda: (
                    agent.check_running()
                    or RelayApiToken.objects.filter(last_used_at__isnull=False).exists()
                ),
                timeout=30,
                what="the relay agent's first poll",
            )
            live.quiet(args.quiet_wait, "poll-only")
            common.say("[poll-only] cancelling")
            with live.other_load() as load:
                polled = asyncio.run(
                    cancel_all(base_url, lab["sessions"]["poll"], SPREAD, "poll-only")
                )
            agent.check_running()
            agent.stop()
            results["poll"] = summarise(polled) | {
                "spread_s": SPREAD,
                **load,
                "deliveries": delivery_states(lab["relays"]["poll"]),
                "agent_log_tail": [line[:160] for line in common.tail(agent.log, 3).splitlines()],
            }

            live.quiet(args.quiet_wait, "feed")
            with live.other_load() as load:
                results["not_modified"] = not_modified_cost(base_url, token, "small feed")
            results["not_modified"] |= load
            snapshot_relay = live.make_relay(
                "bench-snapshot", poll_url, secret_env=SECRET_ENV, push=False
            )
            snapshot_token = relay_token(snapshot_relay)
            live.quiet(args.quiet_wait, "feed")
            with live.other_load() as load:
                results["snapshot"] = snapshot_cost(base_url, snapshot_relay, snapshot_token)
            results["snapshot"] |= load
            with live.other_load() as load:
                results["not_modified_10k"] = not_modified_cost(
                    base_url, snapshot_token, "10k feed"
                )
            results["not_modified_10k"] |= load
            server.check_running()
        finally:
            if agent is not None:
                agent.stop()
            if server is not None:
                server.stop()
            for relay in relays:
                relay.stop()
    return results


def verdict(value: float, target: float) -> str:
    return "met" if value < target else "MISSED"


def report(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"Revocation latency and feed cost -- {m['date']}, {m['nproc']} cores, {m['cpu']}, "
        f"Python {m['python']}, code {m['code']}",
        f"{results['cancels_per_mode']} cancellations per mode, batches of {results['batch']}; "
        f"agent interval {results['agent_interval_s']:.0f} s (its default)",
        "",
        "Time from the cancel response arriving to the relay dropping the websocket (ms;",
        "negative: the relay dropped it before the response reached the client):",
        "",
    ]
    rows = []
    for mode, key, target in (
        ("push", "push", TARGETS["push_p99_ms"]),
        ("push, one burst", "burst", TARGETS["push_p99_ms"]),
        ("poll-only", "poll", TARGETS["poll_p99_ms"]),
    ):
        data = results[key]
        figures = data["from_response"]
        rate = min(data["cancels"], BATCH) / data["spread_s"]
        rows.append(
            {
                "mode": mode,
                "rate": f"{rate:.0f}/s",
                "dropped": f"{data['dropped']}/{data['cancels']}",
                "p50": figures["p50_ms"],
                "p99": figures["p99_ms"],
                "max": figures["max_ms"],
                "from request p50/p99": (
                    f"{data['from_request']['p50_ms']:.0f} / {data['from_request']['p99_ms']:.0f}"
                ),
                "cancel API p50/p99": (
                    f"{data['cancel_api']['p50_ms']:.0f} / {data['cancel_api']['p99_ms']:.0f}"
                ),
                "refused after": f"{data['refused_after']}/{data['cancels']}",
                "other": data["other_cores"],
                "target": f"p99 < {target:.0f} ({verdict(figures['p99_ms'], target)})",
            }
        )
    columns = [
        ("mode", "mode", ""),
        ("cancels", "rate", ""),
        ("dropped", "dropped", ""),
        ("p50", "p50", ".1f"),
        ("p99", "p99", ".1f"),
        ("max", "max", ".1f"),
        ("from request p50/p99", "from request p50/p99", ""),
        ("cancel API p50/p99", "cancel API p50/p99", ""),
        ("token refused after", "refused after", ""),
        ("other load (cores)", "other", ".2f"),
        ("target", "target", ""),
    ]
    lines += [common.table(rows, columns), ""]
    lines.append(
        f"deliveries: push relay {results['push_deliveries']}, "
        f"poll-only relay {results['poll']['deliveries']}"
    )
    lines += ["", "The feed's cost (ms):", ""]
    rows = []
    target = TARGETS["not_modified_ms"]
    for key, label in (
        ("not_modified", "304 poll, small feed"),
        ("not_modified_10k", "304 poll, 10k feed"),
    ):
        data = results[key]
        rows += [
            {
                "what": f"{label}: client over HTTP (loopback, keep-alive)",
                **data["http"],
                "queries": "",
                "other": data["other_cores"],
                "target": f"< {target:.0f} server time",
            },
            {
                "what": f"{label}: in process, view (RequestFactory)",
                **data["view"],
                "queries": data["queries"],
                "target": f"< {target:.0f} ({verdict(data['view']['p99_ms'], target)} at p99)",
            },
            {
                "what": f"{label}: in process, whole Django stack (WSGI handler)",
                **data["stack"],
                "queries": "",
                "target": f"< {target:.0f} ({verdict(data['stack']['p99_ms'], target)} at p99)",
            },
        ]
    snap = results["snapshot"]
    target = TARGETS["snapshot_ms"]
    rows += [
        {
            "what": f"snapshot, {snap['entries']} entries: client over HTTP",
            **snap["http"],
            "queries": "",
            "other": snap["other_cores"],
            "target": f"< {target:.0f} ({verdict(snap['http']['p50_ms'], target)} at p50)",
        },
        {
            "what": "snapshot: in process, view (RequestFactory)",
            **snap["view"],
            "queries": snap["queries"],
            "target": f"< {target:.0f} ({verdict(snap['view']['p99_ms'], target)} at p99)",
        },
        {
            "what": "  of which: the entries' JSON text (feed_entries_json)",
            **snap["query_and_rows"],
        },
        {
            "what": "    the query inside PostgreSQL (EXPLAIN ANALYZE, median of 5)",
            "p50_ms": snap["in_database_ms"],
        },
    ]
    columns = [
        ("what", "what", ""),
        ("n", "n", "d"),
        ("p50", "p50_ms", ".2f"),
        ("p99", "p99_ms", ".2f"),
        ("max", "max_ms", ".2f"),
        ("queries", "queries", ""),
        ("other load (cores)", "other", ".2f"),
        ("target", "target", ""),
    ]
    lines += [common.table(rows, columns), ""]
    lines.append(f"snapshot body {snap['bytes'] / 1024:.0f} KiB")
    return "\n".join(lines)


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cancels", type=int, default=CANCELS, help="cancellations per mode")


def main(argv: list[str]) -> int:
    return live.main(argv, doc=__doc__, run=run, report=report, arguments=arguments)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
