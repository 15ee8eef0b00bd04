"""The relay agent keeps a practable relay's deny list in step with the revocation feed.

The relay is the test relay (in-process, or restarted on the same port to play a restart);
the feed is a small stand-in holding to the feed's contract (cursor, snapshot, ETag, 304).
"""

import asyncio
import io
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from django.core.management import CommandError, call_command

from relay_control.agent import AgentConfig, Credential, CycleReport, RelayAgent
from tests.conftest import RELAY_SECRET
from tests.support.practable_relay import RELAY, RelayState, build_app
from tests.support.processes import ServerProcess, child_env, free_port

FEED_TOKEN = "feed-token-0123456789"
ISSUER = "http://localhost:8000"
WAIT = 10.0


def later(seconds: int = 600) -> int:
    return int(time.time()) + seconds


@dataclass
class FakeFeed:
    """GET /api/v1/relay/revocations/ as the platform answers it, minus the database."""

    entries: list[dict] = field(default_factory=list)
    cursor: int = 0
    purged_through: int = 0
    requests: list[dict] = field(default_factory=list)
    url: str = ""

    def revoke(self, booking_id: str, exp: int | None = None) -> dict:
        self.cursor += 1
        entry = {
            "seq": self.cursor,
            "booking_id": booking_id,
            "exp": exp or later(),
            "revoked_at": int(time.time()),
            "reason": "cancelled",
        }
        self.entries.append(entry)
        return entry

    async def handle(self, request: web.Request) -> web.Response:
        record = {
            "since": request.query.get("since"),
            "if_none_match": request.headers.get("If-None-Match"),
        }
        self.requests.append(record)
        if request.headers.get("Authorization") != f"Bearer {FEED_TOKEN}":
            record["status"] = 401
            return web.json_response({"code": "not_authenticated", "detail": "no"}, status=401)
        try:
            since = int(record["since"]) if record["since"] is not None else None
        except ValueError:
            record["status"] = 400
            return web.json_response({"code": "invalid", "detail": "since"}, status=400)
        etag = f'"{self.cursor}"'
        if record["if_none_match"] == etag:
            record["status"] = 304
            return web.Response(status=304, headers={"ETag": etag})
        snapshot = since is None or since < self.purged_through
        entries = [e for e in self.entries if snapshot or e["seq"] > since]
        record["status"] = 200
        body = {"cursor": self.cursor, "snapshot": snapshot, "entries": entries}
        return web.json_response(body, headers={"ETag": etag})


class LocalRelay:
    """The test relay on a fixed port; stop() and start() again play a relay restart."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state: RelayState | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = build_app(secret=RELAY_SECRET, audience=self.url)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.state = app[RELAY]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def denied(self) -> list[str]:
        assert self.state is not None
        return self.state.deny_list()

    def deny_calls(self) -> list[str]:
        assert self.state is not None
        return [booking_id for booking_id, _ in self.state.deny_calls]


@asynccontextmanager
async def feed_and_relay() -> AsyncIterator[tuple[FakeFeed, LocalRelay]]:
    feed = FakeFeed()
    app = web.Application()
    app.router.add_get("/api/v1/relay/revocations/", feed.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    feed.url = f"http://127.0.0.1:{port}"
    relay = LocalRelay()
    await relay.start()
    try:
        yield feed, relay
    finally:
        await relay.stop()
        await runner.cleanup()


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def feed_token_env(monkeypatch):
    monkeypatch.setenv("AGENT_FEED_TOKEN", FEED_TOKEN)


def make_agent(
    feed: FakeFeed,
    relay: LocalRelay,
    *,
    monotonic: Callable[[], float] = time.monotonic,
    secret_env: str = "RELAY_TEST_SECRET",  # noqa: S107 (a variable's name)
) -> RelayAgent:
    config = AgentConfig(
        feed_url=feed.url,
        api_token=Credential("relay API token", env="AGENT_FEED_TOKEN"),
        relay_url=relay.url,
        relay_secret=Credential("relay secret", env=secret_env),
        audience=relay.url,
        issuer=ISSUER,
        timeout=5,
    )
    return RelayAgent(config, monotonic=monotonic)


async def cycle(agent: RelayAgent) -> CycleReport:
    # The agent blocks on its HTTP calls; the feed and the relay are served on this loop.
    return await asyncio.to_thread(agent.cycle)


def test_it_forwards_the_whole_snapshot_on_start():
    async def scenario():
        async with feed_and_relay() as (feed, relay):
            first = feed.revoke("b-1")
            second = feed.revoke("b-2", exp=later(900))
            feed.revoke("b-old", exp=later(-10))
            agent = make_agent(feed, relay)

            report = await cycle(agent)

            assert report.ok and report.snapshot
            assert report.forwarded == ["b-1", "b-2"]
            assert report.expired == 1
            assert feed.requests == [{"since": None, "if_none_match": None, "status": 200}]
            assert relay.state.deny_calls == [("b-1", first["exp"]), ("b-2", second["exp"])]
            assert relay.denied() == ["b-1", "b-2"]
            assert agent.cursor == 3

    asyncio.run(scenario())


def test_it_forwards_new_entries_once():
    async def scenario():
        async with feed_and_relay() as (feed, relay):
            feed.revoke("b-1")
            agent = make_agent(feed, relay)
            await cycle(agent)
            feed.revoke("b-2")

            report = await cycle(agent)
            quiet = await cycle(agent)

            assert report.ok and not report.snapshot
            assert report.forwarded == ["b-2"]
            assert feed.requests[1] == {"since": "1", "if_none_match": '"1"', "status": 200}
            assert quiet.ok and quiet.not_modified and quiet.forwarded == []
            assert feed.requests[2] == {"since": "2", "if_none_match": '"2"', "status": 304}
            assert relay.deny_calls() == ["b-1", "b-2"]
            assert relay.denied() == ["b-1", "b-2"]

    asyncio.run(scenario())


def test_expired_entries_are_not_forwarded_but_passed():
    async def scenario():
        async with feed_and_relay() as (feed, relay):
            agent = make_agent(feed, relay)
            await cycle(agent)
            feed.revoke("b-gone", exp=later(-1))

            report = await cycle(agent)

            assert report.ok and report.expired == 1 and report.forwarded == []
            assert relay.deny_calls() == []
            assert agent.cursor == 1

    asyncio.run(scenario())


def test_after_the_relay_was_down_it_resends_the_snapshot():
    async def scenario():
        async with feed_and_relay() as (feed, relay):
            feed.revoke("b-1")
            agent = make_agent(feed, relay)
            assert (await cycle(agent)).forwarded == ["b-1"]

            await relay.stop()
            feed.revoke("b-2")
            down = await cycle(agent)
            assert not down.ok and down.failed == ["b-2"] and down.forwarded == []
            assert agent.cursor == 1  # b-2 did not reach the relay
            polls = len(feed.requests)
            still_down = await cycle(agent)
            assert not still_down.ok and "does not answer" in still_down.error
            assert len(feed.requests) == polls  # nothing to forward to: the feed is left alone

            await relay.start()  # a fresh process: its deny list is empty
            assert relay.denied() == []
            back = await cycle(agent)

            assert back.ok and back.snapshot
            assert back.forwarded == ["b-1", "b-2"]
            assert feed.requests[-1]["since"] is None
            assert relay.denied() == ["b-1", "b-2"]
            assert agent.cursor == 2

    asyncio.run(scenario())


def test_it_resends_the_snapshot_periodically():
    clock = Clock()

    async def scenario():
        async with feed_and_relay() as (feed, relay):
            feed.revoke("b-1")
            agent = make_agent(feed, relay, monotonic=clock)
            await cycle(agent)

            clock.now += 59
            assert (await cycle(agent)).not_modified
            clock.now += 1
            again = await cycle(agent)

            assert again.ok and again.snapshot and again.forwarded == ["b-1"]
            assert [r["since"] for r in feed.requests] == [None, "1", None]
            assert relay.deny_calls() == ["b-1", "b-1"]

    asyncio.run(scenario())


def test_a_refused_deny_is_retried_and_never_reported_as_success(monkeypatch):
    monkeypatch.setenv("WRONG_RELAY_SECRET", "not-the-relay-secret-0123456789abcd")

    async def scenario():
        async with feed_and_relay() as (feed, relay):
            feed.revoke("b-1")
            agent = make_agent(feed, relay, secret_env="WRONG_RELAY_SECRET")

            first = await cycle(agent)
            second = await cycle(agent)

            assert not first.ok and first.failed == ["b-1"] and first.forwarded == []
            assert not second.ok and "HTTP 500" in second.error
            assert agent.cursor is None
            assert relay.denied() == []

            monkeypatch.setenv("WRONG_RELAY_SECRET", RELAY_SECRET)  # read at each use
            fixed = await cycle(agent)
            assert fixed.ok and fixed.forwarded == ["b-1"]
            assert relay.denied() == ["b-1"]

    asyncio.run(scenario())


def test_a_snapshot_answer_to_an_update_request_is_forwarded_whole():
    async def scenario():
        async with feed_and_relay() as (feed, relay):
            feed.revoke("b-1")
            agent = make_agent(feed, relay)
            await cycle(agent)
            feed.revoke("b-2")
            feed.purged_through = 2  # our cursor (1) is older than what the feed still holds

            report = await cycle(agent)

            assert feed.requests[-1]["since"] == "1"
            assert report.ok and report.snapshot
            assert report.forwarded == ["b-1", "b-2"]
            assert agent.cursor == 2

    asyncio.run(scenario())


def test_a_bad_feed_token_is_an_error_and_changes_nothing(monkeypatch):
    monkeypatch.setenv("AGENT_FEED_TOKEN", "wrong")

    async def scenario():
        async with feed_and_relay() as (feed, relay):
            feed.revoke("b-1")
            agent = make_agent(feed, relay)
            report = await cycle(agent)
            assert not report.ok and "HTTP 401" in report.error
            assert agent.cursor is None and relay.deny_calls() == []

    asyncio.run(scenario())


def test_no_credential_is_ever_logged(caplog):
    caplog.set_level("DEBUG")

    async def scenario():
        async with feed_and_relay() as (feed, relay):
            feed.revoke("b-1")
            agent = make_agent(feed, relay)
            await cycle(agent)
            await relay.stop()
            feed.revoke("b-2")
            await cycle(agent)
            await relay.start()
            await cycle(agent)

    asyncio.run(scenario())
    assert "b-1" in caplog.text and "b-2" in caplog.text
    assert FEED_TOKEN not in caplog.text
    assert RELAY_SECRET not in caplog.text
    assert "eyJ" not in caplog.text  # no JWT


# --- the command ----------------------------------------------------------------------------


def command_args(feed: FakeFeed, relay: LocalRelay) -> list[str]:
    return [
        "--feed",
        feed.url,
        "--token-env",
        "AGENT_FEED_TOKEN",
        "--relay",
        relay.url,
        "--relay-secret-env",
        "RELAY_TEST_SECRET",
        "--issuer",
        ISSUER,
    ]


def test_the_command_runs_one_cycle_with_once():
    async def scenario():
        async with feed_and_relay() as (feed, relay):
            feed.revoke("b-1")
            out = io.StringIO()
            args = [*command_args(feed, relay), "--once"]
            await asyncio.to_thread(call_command, "relay_agent", *args, stdout=out)
            assert "forwarded 1 (b-1)" in out.getvalue()
            assert relay.denied() == ["b-1"]

            await relay.stop()
            with pytest.raises(CommandError):
                await asyncio.to_thread(call_command, "relay_agent", *args, stdout=io.StringIO())

    asyncio.run(scenario())


def test_the_command_refuses_a_missing_credential(monkeypatch):
    monkeypatch.delenv("AGENT_FEED_TOKEN")
    args = [
        *("--feed", "http://127.0.0.1:9", "--token-env", "AGENT_FEED_TOKEN"),
        *("--relay", "http://127.0.0.1:9", "--relay-secret-env", "RELAY_TEST_SECRET"),
        "--once",
    ]
    with pytest.raises(CommandError, match="relay API token"):
        call_command("relay_agent", *args)


@pytest.mark.live
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_command_stops_cleanly_on_a_signal(signum):
    async def scenario():
        async with feed_and_relay() as (feed, relay):
            feed.revoke("b-1")
            agent = ServerProcess(
                [
                    sys.executable,
                    "manage.py",
                    "relay_agent",
                    *command_args(feed, relay),
                    "--interval",
                    "0.2",
                ],
                env=child_env(AGENT_FEED_TOKEN=FEED_TOKEN, RELAY_TEST_SECRET=RELAY_SECRET),
                name="relay agent",
            )
            try:
                await asyncio.to_thread(agent.start, ready=r"forwarded 1 \(b-1\)", timeout=WAIT)
                # A later cycle has begun, so the signal lands in the loop, not at start-up.
                seen = len(agent.lines)
                feed.revoke("b-2")
                await asyncio.to_thread(
                    agent.wait_for_line, r"forwarded 1 \(b-2\)", timeout=WAIT, after=seen
                )
                agent.signal(signum)
                code = await asyncio.to_thread(agent.wait, WAIT)
            finally:
                agent.stop()
            output = agent.output()
            assert code == 0, output
            assert re.search(r"relay agent stopped", output)
            assert relay.denied() == ["b-1", "b-2"]
            assert FEED_TOKEN not in output and RELAY_SECRET not in output
            assert "eyJ" not in output

    asyncio.run(scenario())
