"""Events across web processes (Redis channel layer), and Redis going away."""

import asyncio
import json
from datetime import timedelta
from urllib.parse import urlsplit

import aiohttp
import pytest
from django.utils import timezone

from tests.support.processes import wait_until
from tests.support.servers import LiveClient, WebProcess, live_env

pytestmark = [
    pytest.mark.live,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("live_passwords"),
]


def begin_session(base_url: str, username: str, experiment: str) -> dict:
    client = LiveClient(base_url)
    client.login(username, f"pw-{username}")
    start = timezone.now() - timedelta(seconds=5)
    status, booking = client.request(
        "POST",
        "/api/v1/bookings/",
        {
            "pool": "pendulums",
            "experiment": experiment,
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=10)).isoformat(),
        },
    )
    assert status == 201, booking
    status, state = client.request("POST", f"/api/v1/bookings/{booking['id']}/session/")
    assert status == 201, state
    return {"client": client, "booking": booking, "code": state["session"]}


def bearer(base_url: str, method: str, path: str, code: str) -> tuple[int, object]:
    return LiveClient(base_url).request(
        method, path, {} if method == "POST" else None, headers={"Authorization": f"Bearer {code}"}
    )


async def open_socket(http, base_url: str, code: str):
    ws_url = "ws://" + urlsplit(base_url).netloc + "/ws/session/"
    ws = await http.ws_connect(ws_url, headers={"Origin": "http://localhost:8000"})
    await ws.send_json({"type": "auth", "session": code})
    return ws


async def next_json(ws, timeout: float = 10.0) -> dict:
    message = await ws.receive(timeout=timeout)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    return json.loads(message.data)


@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
def test_a_cancel_served_by_one_process_reaches_a_socket_on_another(lab, redis_url, server):
    """Production's command (uvicorn, docker-compose.yml) and daphne alike."""
    env = live_env(REDIS_URL=redis_url, WEB_PROCESSES="2")
    a, b = WebProcess(env, server=server).start(), WebProcess(env, server=server).start()
    try:
        live = begin_session(b.url, "student", "pend00")

        async def scenario():
            async with aiohttp.ClientSession() as http:
                ws = await open_socket(http, a.url, live["code"])
                assert (await next_json(ws))["type"] == "ready"
                status, _ = await asyncio.to_thread(
                    bearer, b.url, "POST", "/api/v1/session/cancel/", live["code"]
                )
                assert status == 200
                event = await next_json(ws)
                assert event["type"] == "session.cancelled"
                assert event["by"] == "user" and event["seq"] == 1
                closing = await ws.receive(timeout=10)
                assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                assert ws.close_code == 4410

        asyncio.run(scenario())
    finally:
        a.stop()
        b.stop()


def test_without_redis_bookings_and_cancels_work_and_clients_catch_up(lab, services, tmp_path):
    redis_url, stop_redis = services.start_redis(tmp_path)
    port = int(urlsplit(redis_url).port)
    server = WebProcess(live_env(REDIS_URL=redis_url)).start()
    try:
        first = begin_session(server.url, "student", "pend00")
        second = begin_session(server.url, "student2", "pend01")

        async def before_outage():
            async with aiohttp.ClientSession() as http:
                ws = await open_socket(http, server.url, first["code"])
                assert (await next_json(ws))["type"] == "ready"
                await ws.close()

        asyncio.run(before_outage())
        stop_redis()

        # Redis is down: the database decides, so booking and cancelling still work.
        status, body = bearer(server.url, "POST", "/api/v1/session/cancel/", first["code"])
        assert status == 200 and body["status"] == "cancelled"
        start = timezone.now() + timedelta(hours=1)
        status, booked = first["client"].request(
            "POST",
            "/api/v1/bookings/",
            {
                "pool": "pendulums",
                "start": start.isoformat(),
                "end": (start + timedelta(minutes=10)).isoformat(),
            },
        )
        assert status == 201, booked
        status, feed_state = bearer(server.url, "GET", "/api/v1/session/", second["code"])
        assert status == 200

        redis_url, stop_redis = services.start_redis(tmp_path, port=port)

        async def after_outage():
            async with aiohttp.ClientSession() as http:
                # The cancelled session refuses a reconnect, and its missed event replays.
                ws = await open_socket(http, server.url, first["code"])
                closing = await ws.receive(timeout=10)
                assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                assert ws.close_code == 4410
                status, replay = await asyncio.to_thread(
                    bearer, server.url, "GET", "/api/v1/session/events/?after=0", first["code"]
                )
                assert status == 200
                assert [e["type"] for e in replay["events"]] == ["session.cancelled"]
                # Live delivery is back for a socket opened after Redis returned.
                ws2 = await open_socket(http, server.url, second["code"])
                assert (await next_json(ws2))["type"] == "ready"
                status, _ = await asyncio.to_thread(
                    bearer, server.url, "POST", "/api/v1/session/cancel/", second["code"]
                )
                assert status == 200
                event = await next_json(ws2)
                assert event["type"] == "session.cancelled"

        asyncio.run(after_outage())
    finally:
        server.stop()
        stop_redis()


def test_a_logout_served_by_one_process_ends_the_session_on_another(lab, redis_url):
    """On PostgreSQL the other process remembered the session (LOGIN_CACHE_SECONDS) and
    forgets it when PostgreSQL notifies the logout; on SQLite it reads it every time."""
    env = live_env(REDIS_URL=redis_url, WEB_PROCESSES="2")
    a, b = WebProcess(env, server="uvicorn").start(), WebProcess(env, server="uvicorn").start()
    try:
        browser = LiveClient(a.url)
        browser.login("student", "pw-student")
        replayed = {"Cookie": f"sessionid={browser.cookie('sessionid')}"}
        other = LiveClient(b.url)
        for _ in range(3):  # b reads the session, then remembers it
            assert other.request("GET", "/api/v1/bookings/", headers=replayed)[0] == 200
        csrf = {"csrfmiddlewaretoken": browser.cookie("csrftoken")}
        assert browser.request("POST", "/accounts/logout/", csrf, form=True)[0] == 200
        wait_until(
            lambda: other.request("GET", "/api/v1/bookings/", headers=replayed)[0] in (401, 403),
            timeout=5,
            what="the logged-out session to stop working on the other process",
        )
    finally:
        a.stop()
        b.stop()
