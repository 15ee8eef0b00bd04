"""The whole chain with real processes: daphne serving the platform, a practable-style
relay, and the relay agent. A cancelled session's connection is dropped and its token is
refused afterwards: by direct push, by the agent alone, and with the relay down at the
moment of the cancel."""

import asyncio
import json
import subprocess
import sys
import time
from datetime import timedelta

import aiohttp
import pytest
from django.utils import timezone

from booking.models import Relay
from relay_control.models import RevocationDelivery
from tests.conftest import RELAY_SECRET
from tests.support.processes import start_test_relay, wait_until
from tests.support.servers import ROOT, LiveClient, WebProcess, live_env

pytestmark = [
    pytest.mark.live,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("live_passwords"),
]


@pytest.fixture
def relay(lab):
    """A test relay, and the lab's relay row pointing at it (audience = its access URL)."""
    with start_test_relay(secret=RELAY_SECRET) as running:
        Relay.objects.filter(pk=lab.relay.pk).update(access_url=running.url, audience="")
        yield running


def begin_session(base_url: str) -> dict:
    client = LiveClient(base_url)
    client.login("student", "pw-student")
    start = timezone.now() - timedelta(seconds=5)
    status, booking = client.request(
        "POST",
        "/api/v1/bookings/",
        {
            "pool": "pendulums",
            "experiment": "pend00",
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=10)).isoformat(),
        },
    )
    assert status == 201, booking
    status, state = client.request("POST", f"/api/v1/bookings/{booking['id']}/session/")
    assert status == 201, state
    data = next(s for s in state["streams"] if s["for"] == "data")
    return {"client": client, "booking": booking, "code": state["session"], "stream": data}


async def ask_relay(http: aiohttp.ClientSession, stream: dict) -> tuple[int, dict | str]:
    """What a browser does: POST the token, raw, to the stream's URL."""
    async with http.post(stream["url"], headers={"Authorization": stream["token"]}) as response:
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text


async def connect_through_relay(http: aiohttp.ClientSession, stream: dict):
    status, body = await ask_relay(http, stream)
    assert status == 200, body
    ws = await http.ws_connect(body["uri"])
    first = await ws.receive(timeout=5)
    assert first.type == aiohttp.WSMsgType.TEXT  # the relay is sending
    return ws


async def wait_dropped(ws, timeout: float) -> None:
    """Read until the relay drops the connection; fail if it is still open at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
        if message.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.ERROR,
        ):
            return
    raise AssertionError("the relay kept the connection open")


async def refused_within(http, stream: dict, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status, _ = await ask_relay(http, stream)
        if status == 400:
            return status
        await asyncio.sleep(0.2)  # polling the relay, bounded by the deadline
    return status


def cancel(base_url: str, live: dict) -> float:
    """Cancel through the API; returns when the response arrived (monotonic seconds)."""
    status, body = live["client"].request(
        "POST", f"/api/v1/bookings/{live['booking']['id']}/cancel/"
    )
    assert status == 200 and body["status"] == "cancelled"
    return time.monotonic()


def marked_delivered() -> bool:
    """The relay acts on the deny before the platform marks the delivery done (after the
    2xx), so the row may lag the refusal by a moment: wait for it, bounded."""
    return wait_until(
        lambda: RevocationDelivery.objects.get().state == "delivered",
        timeout=10,
        what="the delivery marked delivered",
    )


def test_direct_push_drops_the_connection(lab, relay):
    server = WebProcess(live_env()).start()
    try:
        live = begin_session(server.url)

        async def scenario():
            async with aiohttp.ClientSession() as http:
                ws = await connect_through_relay(http, live["stream"])
                answered = await asyncio.to_thread(cancel, server.url, live)
                await wait_dropped(ws, timeout=5)
                assert ws.close_code in (None, 1006)  # no close frame: the relay just drops it
                assert time.monotonic() - answered < 5
                status, body = await ask_relay(http, live["stream"])
                assert status == 400, body

        asyncio.run(scenario())
        assert marked_delivered()
    finally:
        server.stop()


def test_the_agent_alone_drops_the_connection(lab, relay):
    from relay_control.api_tokens import relay_token_create

    Relay.objects.filter(pk=lab.relay.pk).update(push_enabled=False)
    _, token = relay_token_create(relay=lab.relay, now=timezone.now())
    server = WebProcess(live_env()).start()
    agent = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "relay_agent",
            "--feed",
            server.url,
            "--token-env",
            "AGENT_FEED_TOKEN",
            "--relay",
            relay.url,
            "--relay-secret-env",
            "RELAY_TEST_SECRET",
            "--issuer",
            "http://127.0.0.1:8000",
            "--interval",
            "1",
        ],
        cwd=ROOT,
        env=live_env(AGENT_FEED_TOKEN=token),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        live = begin_session(server.url)

        async def scenario():
            async with aiohttp.ClientSession() as http:
                ws = await connect_through_relay(http, live["stream"])
                await asyncio.to_thread(cancel, server.url, live)
                await wait_dropped(ws, timeout=10)
                assert await refused_within(http, live["stream"], timeout=5) == 400

        asyncio.run(scenario())
        assert RevocationDelivery.objects.get().state == "not_pushed"
    finally:
        agent.terminate()
        output = agent.communicate(timeout=20)[0].decode()
        server.stop()
    assert agent.returncode == 0, output
    assert token not in output and RELAY_SECRET not in output


def test_a_relay_down_at_cancel_time_is_told_when_it_is_back(lab, relay):
    server = WebProcess(live_env(JOBS_IN_PROCESS="1", JOB_INTERVAL_SECONDS="1")).start()
    try:
        live = begin_session(server.url)
        relay.stop()
        cancel(server.url, live)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            delivery = RevocationDelivery.objects.get()
            if delivery.attempts >= 1:
                break
            time.sleep(0.1)  # polling the database, bounded by the deadline
        assert delivery.state == "pending" and delivery.last_error  # never reported as done
        relay.restart()  # it forgot everything: the token would be accepted again

        async def scenario():
            async with aiohttp.ClientSession() as http:
                assert await refused_within(http, live["stream"], timeout=20) == 400

        asyncio.run(scenario())
        assert marked_delivered()
    finally:
        server.stop()
