"""The test relay answers as the practable relay does: tokens, one-time codes, deny, restart.

Tokens are made by the platform's own signing code, so these tests also show that what we
issue is what a practable relay accepts.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from django.utils import timezone

from booking.models import Relay
from sessions_app import tokens
from tests.conftest import RELAY_SECRET
from tests.support.practable_relay import (
    DENIED,
    RELAY,
    TOKEN_INVALID,
    WRONG_TOPIC,
    RelayState,
    build_app,
)
from tests.support.processes import start_test_relay

AUDIENCE = "http://relay.test/access"
TOPIC = "pend00-data"
BOOKING = "7b0c3f2e-0d4a-4a8e-9a57-1d2f3c4b5a69"
# Long enough for several heartbeats (100 ms apart), short enough to keep the suite quick.
SILENCE = 0.5
WAIT = 5.0


def relay_row(**fields) -> Relay:
    """A relay as the platform knows it (unsaved: signing needs no database)."""
    fields.setdefault("secret_env", "RELAY_TEST_SECRET")
    fields.setdefault("access_url", AUDIENCE)
    return Relay(slug="relay-t", **fields)


def stream_token(
    *, booking: str = BOOKING, ttl: int = 600, relay: Relay | None = None, **changes
) -> str:
    """A stream token as the platform signs it, with `changes` made to its claims."""
    relay = relay or relay_row()
    now = timezone.now()
    claims = tokens.stream_claims(
        relay=relay,
        user_id=1,
        booking_id=booking,
        topic=TOPIC,
        scopes=["read", "write"],
        now=now,
        exp=now + timedelta(seconds=ttl),
    )
    claims.update(changes)
    return tokens.sign(relay, claims)


def admin_token(relay: Relay | None = None) -> str:
    return tokens.relay_admin_token(relay or relay_row(), now=timezone.now())


@dataclass
class Harness:
    url: str
    http: aiohttp.ClientSession
    state: RelayState | None = None  # in-process only

    async def session(self, token: str, topic: str = TOPIC) -> aiohttp.ClientResponse:
        response = await self.http.post(
            f"{self.url}/session/{topic}", headers={"Authorization": token}
        )
        await response.read()
        return response

    async def uri(self, token: str) -> str:
        response = await self.session(token)
        assert response.status == 200, await response.text()
        return (await response.json())["uri"]

    async def deny(self, booking_id: str, exp: int, token: str | None = None) -> int:
        response = await self.http.post(
            f"{self.url}/bids/deny",
            params={"bid": booking_id, "exp": str(exp)},
            headers={"Authorization": token or admin_token()},
        )
        return response.status

    async def denied(self) -> list[str]:
        response = await self.http.get(
            f"{self.url}/bids/deny", headers={"Authorization": admin_token()}
        )
        assert response.status == 200
        return (await response.json())["booking_ids"]


@asynccontextmanager
async def relay_in_process() -> AsyncIterator[Harness]:
    app = build_app(secret=RELAY_SECRET, audience=AUDIENCE)
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as http:
        yield Harness(str(server.make_url("")).rstrip("/"), http, app[RELAY])


async def until_closed(ws: aiohttp.ClientWebSocketResponse, timeout: float = WAIT) -> None:
    """Read (and drop) messages until the connection ends; TimeoutError if it does not."""
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.receive()
            if message.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                return


async def is_silent(ws: aiohttp.ClientWebSocketResponse) -> bool:
    try:
        await ws.receive(timeout=SILENCE)
    except TimeoutError:
        return True
    return False


def later(seconds: int = 600) -> int:
    return int(time.time()) + seconds


def test_a_valid_token_opens_a_websocket_that_hears_the_relay():
    async def scenario():
        async with relay_in_process() as relay:
            uri = await relay.uri(stream_token())
            assert uri.startswith(f"ws://127.0.0.1:{relay.url.rsplit(':', 1)[1]}/")
            assert f"/session/{TOPIC}?code=" in uri
            async with relay.http.ws_connect(uri) as ws:
                first = await ws.receive_json(timeout=WAIT)
                second = await ws.receive_json(timeout=WAIT)
            assert first == {"topic": TOPIC, "n": 1}
            assert second == {"topic": TOPIC, "n": 2}

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda: f"Bearer {stream_token()}", id="bearer-prefix"),
        pytest.param(lambda: stream_token(booking_id=1234), id="numeric-booking-id"),
        pytest.param(lambda: stream_token(aud=[f"{AUDIENCE}/"]), id="audience-not-byte-equal"),
        pytest.param(lambda: stream_token(aud=["http://other.test/access"]), id="other-audience"),
        pytest.param(
            lambda: stream_token(relay=relay_row(secret_env="OTHER_RELAY_SECRET")),
            id="other-secret",
        ),
        pytest.param(lambda: stream_token(exp=int(time.time()) - 5), id="expired"),
        pytest.param(lambda: "not-a-jwt", id="garbage"),
    ],
)
def test_an_unusable_token_is_a_500_as_the_relay_answers(monkeypatch, make_token):
    monkeypatch.setenv("OTHER_RELAY_SECRET", "another-secret-0123456789abcdef0123")
    token = make_token()

    async def scenario():
        async with relay_in_process() as relay:
            response = await relay.session(token)
            assert response.status == 500
            assert (await response.json())["message"] == TOKEN_INVALID
            assert relay.state.codes == {}

    asyncio.run(scenario())


def test_a_token_for_another_topic_is_refused():
    # The relay reads this token fine and refuses it in its handler: a 401, not a 500.
    async def scenario():
        async with relay_in_process() as relay:
            response = await relay.session(stream_token(), topic="pend01-data")
            assert response.status == 401
            assert await response.json() == WRONG_TOPIC
            assert relay.state.codes == {}

    asyncio.run(scenario())


def test_a_request_without_a_token_is_a_401():
    async def scenario():
        async with relay_in_process() as relay:
            response = await relay.http.post(f"{relay.url}/session/{TOPIC}")
            assert response.status == 401

    asyncio.run(scenario())


def test_deny_drops_live_websockets_abnormally_and_refuses_the_booking():
    token = stream_token()
    other = stream_token(booking="another-booking")

    async def scenario():
        async with relay_in_process() as relay:
            ws = await relay.http.ws_connect(await relay.uri(token))
            bystander = await relay.http.ws_connect(await relay.uri(other))
            await ws.receive_json(timeout=WAIT)
            await bystander.receive_json(timeout=WAIT)

            assert await relay.deny(BOOKING, later()) == 204

            await until_closed(ws)
            assert ws.close_code == aiohttp.WSCloseCode.ABNORMAL_CLOSURE  # 1006: no close frame
            assert (await bystander.receive_json(timeout=WAIT))["topic"] == TOPIC
            again = await relay.session(token)
            assert again.status == 400
            assert (await again.json())["message"] == DENIED
            assert await relay.denied() == [BOOKING]
            assert (await relay.session(other)).status == 200
            await bystander.close()

    asyncio.run(scenario())


def test_deny_cancels_unused_codes():
    async def scenario():
        async with relay_in_process() as relay:
            uri = await relay.uri(stream_token())
            assert len(relay.state.codes) == 1
            assert await relay.deny(BOOKING, later()) == 204
            assert relay.state.codes == {}
            async with relay.http.ws_connect(uri) as ws:  # the upgrade still completes
                assert await is_silent(ws)

    asyncio.run(scenario())


def test_a_code_serves_one_connection_only():
    async def scenario():
        async with relay_in_process() as relay:
            uri = await relay.uri(stream_token())
            async with relay.http.ws_connect(uri) as first:
                await first.receive_json(timeout=WAIT)
                async with relay.http.ws_connect(uri) as second:
                    assert await is_silent(second)

    asyncio.run(scenario())


def test_a_connection_is_dropped_when_its_token_expires():
    async def scenario():
        async with relay_in_process() as relay:
            exp = int(time.time()) + 2
            uri = await relay.uri(stream_token(exp=exp))
            async with relay.http.ws_connect(uri) as ws:
                await ws.receive_json(timeout=WAIT)
                await until_closed(ws, timeout=WAIT)
                assert ws.close_code == aiohttp.WSCloseCode.ABNORMAL_CLOSURE
            assert time.time() >= exp - 1

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("exp", "expected"),
    [(-60, 400), (600, 204)],
    ids=["exp-in-the-past", "exp-ahead"],
)
def test_deny_answers_by_its_exp(exp, expected):
    async def scenario():
        async with relay_in_process() as relay:
            assert await relay.deny(BOOKING, later(exp)) == expected
            assert await relay.denied() == ([BOOKING] if expected == 204 else [])

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("make_token", "expected"),
    [
        pytest.param(lambda: stream_token(), 401, id="stream-token-no-admin-scope"),
        pytest.param(lambda: f"Bearer {admin_token()}", 500, id="bearer-prefix"),
        pytest.param(
            lambda: admin_token(relay_row(audience="http://other.test/access")),
            500,
            id="other-audience",
        ),
    ],
)
def test_deny_and_its_list_need_an_admin_token(make_token, expected):
    token = make_token()

    async def scenario():
        async with relay_in_process() as relay:
            assert await relay.deny(BOOKING, later(), token=token) == expected
            listing = await relay.http.get(
                f"{relay.url}/bids/deny", headers={"Authorization": token}
            )
            assert listing.status == expected
            assert relay.state.denied == {}

    asyncio.run(scenario())


# --- the relay as a process ---------------------------------------------------------------


@pytest.fixture
def relay_process():
    relay = start_test_relay(secret=RELAY_SECRET)
    yield relay
    relay.stop()


@pytest.mark.live
def test_the_relay_process_forgets_its_deny_list_when_it_restarts(relay_process):
    row = relay_row(access_url=relay_process.url)
    token = stream_token(relay=row)

    async def refused_then_accepted():
        async with aiohttp.ClientSession() as http:
            harness = Harness(relay_process.url, http)
            ws = await http.ws_connect(await harness.uri(token))
            await ws.receive_json(timeout=WAIT)
            deny = await http.post(
                f"{relay_process.url}/bids/deny",
                params={"bid": BOOKING, "exp": str(later())},
                headers={"Authorization": admin_token(row)},
            )
            assert deny.status == 204
            await until_closed(ws)
            assert ws.close_code == aiohttp.WSCloseCode.ABNORMAL_CLOSURE
            assert (await harness.session(token)).status == 400

    async def accepted():
        async with aiohttp.ClientSession() as http:
            harness = Harness(relay_process.url, http)
            async with http.ws_connect(await harness.uri(token)) as ws:
                assert (await ws.receive_json(timeout=WAIT))["n"] == 1

    asyncio.run(refused_then_accepted())
    relay_process.restart()
    asyncio.run(accepted())
    assert relay_process.stop() == 0
    output = relay_process.process.output()
    assert output.count("READY") == 2
    assert "deny: booking" in output
    assert "eyJ" not in output  # no token, stream or admin
