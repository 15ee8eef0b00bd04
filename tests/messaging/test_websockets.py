"""The browsers' websockets through the real ASGI application."""

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.utils import timezone

from booking.models import UI, UISet
from config.asgi import application
from messaging import consumers, services
from messaging.models import Message, SessionEvent, SurveyResponse
from messaging.services import message_send, session_timers_sweep
from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = (b"origin", b"http://localhost:8000")


def start_session(lab, user=None, *, minutes=10, experiment="pend00") -> dict:
    """A booking that started just now and its session state."""
    client = client_for(user or lab.student)
    start = timezone.now() - timedelta(seconds=5)
    body = {
        "pool": "pendulums",
        "experiment": experiment,
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=minutes)).isoformat(),
    }
    booking = client.post("/api/v1/bookings/", body, content_type="application/json").json()
    state = client.post(f"/api/v1/bookings/{booking['id']}/session/").json()
    return {"client": client, "booking": booking, "state": state, "code": state["session"]}


def bearer(method: str, path: str, code: str, body: dict | None = None):
    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {code}"}
    if method == "get":
        return client.get(path, **headers)
    return client.post(path, body or {}, content_type="application/json", **headers)


async def open_session_socket(code: str | None, origin=ORIGIN) -> WebsocketCommunicator:
    ws = WebsocketCommunicator(application, "/ws/session/", headers=[origin] if origin else [])
    connected, _ = await ws.connect()
    assert connected
    if code is not None:
        await ws.send_json_to({"type": "auth", "session": code})
    return ws


async def expect_close(ws: WebsocketCommunicator, code: int) -> None:
    message = await ws.receive_output(timeout=5)
    assert message == {"type": "websocket.close", "code": code}


def test_it_authenticates_with_the_first_message_and_streams_events(lab):
    live = start_session(lab)

    async def scenario():
        ws = await open_session_socket(live["code"])
        assert await ws.receive_json_from(timeout=5) == {"type": "ready", "seq": 0}
        extended = await sync_to_async(bearer)("post", "/api/v1/session/extend/", live["code"])
        assert extended.status_code == 200
        event = await ws.receive_json_from(timeout=5)
        assert event["type"] == "session.extended" and event["seq"] == 1
        assert event["end"] == extended.json()["end"]
        assert [s["for"] for s in event["streams"]] == ["data", "video"]
        assert all(s["token"] for s in event["streams"])
        await sync_to_async(message_send)(
            target="session",
            session=await sync_to_async(lambda: lab.student.bookings.get().session)(),
            text="Please close the door",
            level="warning",
            sender=lab.maintainer,
            now=timezone.now(),
        )
        event = await ws.receive_json_from(timeout=5)
        assert event["type"] == "message" and event["seq"] == 2
        assert event["text"] == "Please close the door" and event["level"] == "warning"
        assert event["from"] == "Mia Maintainer" and event["id"]
        cancelled = await sync_to_async(bearer)("post", "/api/v1/session/cancel/", live["code"])
        assert cancelled.status_code == 200
        event = await ws.receive_json_from(timeout=5)
        assert event == {"type": "session.cancelled", "seq": 3, "reason": "cancelled", "by": "user"}
        await expect_close(ws, 4410)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "first",
    [
        {"type": "auth", "session": "s_" + "A" * 43},
        {"type": "auth", "session": 5},
        {"type": "auth"},
        {"type": "hello", "session": "x"},
        "not json",
    ],
)
def test_bad_auth_is_closed_with_4401(lab, first):
    async def scenario():
        ws = await open_session_socket(None)
        if isinstance(first, str):
            await ws.send_to(text_data=first)
        else:
            await ws.send_json_to(first)
        await expect_close(ws, 4401)

    asyncio.run(scenario())


def test_no_auth_in_time_is_closed_with_4401(lab, monkeypatch):
    monkeypatch.setattr(consumers, "AUTH_TIMEOUT", 0.2)

    async def scenario():
        ws = await open_session_socket(None)
        await expect_close(ws, 4401)

    asyncio.run(scenario())


def test_a_cancelled_session_is_refused_with_4410(lab):
    live = start_session(lab)
    bearer("post", "/api/v1/session/cancel/", live["code"])

    async def scenario():
        ws = await open_session_socket(live["code"])
        await expect_close(ws, 4410)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "origin",
    [(b"origin", b"https://evil.example.org"), (b"origin", b"null"), None],
)
def test_foreign_origins_are_refused(lab, origin):
    async def scenario():
        ws = WebsocketCommunicator(application, "/ws/session/", headers=[origin] if origin else [])
        connected, code = await ws.connect()
        assert not connected and code == 4401

    asyncio.run(scenario())


def test_a_ui_origin_from_the_catalogue_is_accepted(lab):
    from booking.origins import forget_ui_origins

    ui = UI.objects.create(slug="ui", title="UI", url="https://ui.example.org/p/?s={{session}}")
    UISet.objects.create(slug="s").uis.add(ui)
    forget_ui_origins()
    live = start_session(lab)

    async def scenario():
        ws = await open_session_socket(live["code"], origin=(b"origin", b"https://ui.example.org"))
        assert (await ws.receive_json_from(timeout=5))["type"] == "ready"
        await ws.disconnect()

    asyncio.run(scenario())
    forget_ui_origins()


def test_one_code_hears_only_its_own_session(lab):
    mine = start_session(lab)
    theirs = start_session(lab, lab.student2, experiment="pend01")

    async def scenario():
        ws = await open_session_socket(mine["code"])
        await ws.receive_json_from(timeout=5)
        await sync_to_async(bearer)("post", "/api/v1/session/cancel/", theirs["code"])
        await sync_to_async(bearer)("post", "/api/v1/session/extend/", mine["code"])
        event = await ws.receive_json_from(timeout=5)
        assert event["type"] == "session.extended" and event["seq"] == 1
        await ws.disconnect()

    asyncio.run(scenario())


def test_ending_ended_and_survey_come_from_the_sweep(lab, settings):
    settings.SURVEY_URL = "https://survey.example.org/?ref={{reference}}"
    live = start_session(lab, minutes=10)
    end = timezone.now() + timedelta(minutes=10)

    async def scenario():
        ws = await open_session_socket(live["code"])
        await ws.receive_json_from(timeout=5)
        await sync_to_async(session_timers_sweep)(now=end - timedelta(seconds=290))
        event = await ws.receive_json_from(timeout=5)
        assert event["type"] == "session.ending" and event["seq"] == 1
        assert 280 <= event["seconds_left"] <= 300
        await sync_to_async(session_timers_sweep)(now=end - timedelta(seconds=280))  # nothing new
        await sync_to_async(session_timers_sweep)(now=end - timedelta(seconds=50))
        assert (await ws.receive_json_from(timeout=5))["seq"] == 2
        await sync_to_async(session_timers_sweep)(now=end + timedelta(seconds=5))
        ended = await ws.receive_json_from(timeout=5)
        survey = await ws.receive_json_from(timeout=5)
        assert ended == {"type": "session.ended", "seq": 3}
        assert survey == {
            "type": "survey",
            "seq": 4,
            "url": f"https://survey.example.org/?ref={live['booking']['reference']}",
        }
        await ws.disconnect()

    asyncio.run(scenario())
    assert session_timers_sweep(now=end + timedelta(seconds=30)) == {"ending": 0, "ended": 0}


def test_a_missed_event_can_be_replayed(lab):
    live = start_session(lab)
    bearer("post", "/api/v1/session/extend/", live["code"])
    bearer("post", "/api/v1/session/cancel/", live["code"])
    response = bearer("get", "/api/v1/session/events/?after=0", live["code"])
    assert response.status_code == 200
    events = response.json()["events"]
    assert [(e["seq"], e["type"]) for e in events] == [
        (1, "session.extended"),
        (2, "session.cancelled"),
    ]
    assert events[0]["streams"] == []  # over: no fresh tokens for a cancelled session
    later = bearer("get", "/api/v1/session/events/?after=1", live["code"]).json()["events"]
    assert [e["seq"] for e in later] == [2]
    assert bearer("get", "/api/v1/session/events/?after=x", live["code"]).status_code == 400
    assert bearer("get", "/api/v1/session/events/", "s_" + "A" * 43).status_code == 401


def test_events_stay_readable_for_the_survey_period_only(lab, settings):
    import time_machine

    settings.SURVEY_PERIOD_SECONDS = 3600
    live = start_session(lab)
    bearer("post", "/api/v1/session/cancel/", live["code"])
    with time_machine.travel(timezone.now() + timedelta(minutes=30)):
        assert bearer("get", "/api/v1/session/events/", live["code"]).status_code == 200
        answered = bearer("post", "/api/v1/session/survey/", live["code"], {"answers": {"q1": 5}})
        assert answered.status_code == 201
    with time_machine.travel(timezone.now() + timedelta(minutes=90)):
        response = bearer("get", "/api/v1/session/events/", live["code"])
        assert response.status_code == 410 and response.json()["code"] == "booking_over"
    assert SurveyResponse.objects.get().answers == {"q1": 5}


def test_the_user_socket_needs_a_login_and_hears_that_users_events(lab):
    live = start_session(lab)
    client = client_for(lab.student)
    cookie = client.cookies["sessionid"].value

    async def scenario():
        anonymous = WebsocketCommunicator(application, "/ws/user/", headers=[ORIGIN])
        connected, code = await anonymous.connect()
        assert not connected and code == 4401
        ws = WebsocketCommunicator(
            application, "/ws/user/", headers=[ORIGIN, (b"cookie", f"sessionid={cookie}".encode())]
        )
        connected, _ = await ws.connect()
        assert connected
        assert await ws.receive_json_from(timeout=5) == {"type": "ready", "seq": 0}
        await sync_to_async(message_send)(
            target="user", user=lab.student, text="Hello", sender=None, now=timezone.now()
        )
        event = await ws.receive_json_from(timeout=5)
        assert event["type"] == "message" and event["seq"] == 1 and event["from"] == "lab staff"
        await sync_to_async(bearer)("post", "/api/v1/session/cancel/", live["code"])
        event = await ws.receive_json_from(timeout=5)
        assert event["type"] == "booking.changed" and event["seq"] == 2
        assert event["status"] == "cancelled" and event["booking"] == live["booking"]["id"]
        await ws.disconnect()

    asyncio.run(scenario())


def test_broadcasts_reach_the_sessions_in_scope_and_are_kept(lab):
    a = start_session(lab)
    b = start_session(lab, lab.student2, experiment="pend01")
    now = timezone.now()
    pool_message = message_send(target="pool", pool=lab.pool, text="Pool notice", now=now)
    exp_message = message_send(target="experiment", experiment=lab.pend01, text="pend01", now=now)
    everyone = message_send(target="everyone", text="All", now=now)
    assert (pool_message.recipients, exp_message.recipients, everyone.recipients) == (2, 1, 2)
    texts = lambda code: [  # noqa: E731
        e["text"] for e in bearer("get", "/api/v1/session/events/", code).json()["events"]
    ]
    assert texts(a["code"]) == ["Pool notice", "All"]
    assert texts(b["code"]) == ["Pool notice", "pend01", "All"]
    assert Message.objects.count() == 3
    assert SessionEvent.objects.filter(type="message").count() == 5


def test_a_fan_out_through_the_process_hub_carries_each_sessions_seq(lab, monkeypatch):
    """Many recipients: one hub message per chunk; each socket gets its own session's seq,
    and a socket outside the recipients hears nothing."""
    from messaging import hub

    monkeypatch.setattr(hub, "MIN_SESSIONS", 1)
    monkeypatch.setattr(hub, "CHUNK", 1)  # two sessions, two chunks
    a = start_session(lab)
    b = start_session(lab, lab.student2, experiment="pend01")
    sent: list[tuple[str, dict]] = []
    monkeypatch.setattr(
        "messaging.services.group_send_many",
        lambda items, send=services.group_send_many: (
            sent.extend(items := list(items)) or send(items)
        ),
    )

    async def scenario():
        ws_a = await open_session_socket(a["code"])
        ws_b = await open_session_socket(b["code"])
        assert (await ws_a.receive_json_from(timeout=5))["seq"] == 0
        assert (await ws_b.receive_json_from(timeout=5))["seq"] == 0
        await sync_to_async(bearer)("post", "/api/v1/session/extend/", b["code"])
        assert (await ws_b.receive_json_from(timeout=5))["seq"] == 1
        await sync_to_async(message_send)(
            target="experiment", experiment=lab.pend01, text="Only pend01", now=timezone.now()
        )
        await sync_to_async(message_send)(
            target="pool", pool=lab.pool, text="Everyone", now=timezone.now()
        )
        first_b = await ws_b.receive_json_from(timeout=5)
        second_b = await ws_b.receive_json_from(timeout=5)
        only_a = await ws_a.receive_json_from(timeout=5)
        assert (first_b["text"], first_b["seq"]) == ("Only pend01", 2)
        assert (second_b["text"], second_b["seq"]) == ("Everyone", 3)
        assert (only_a["type"], only_a["text"], only_a["seq"]) == ("message", "Everyone", 1)
        assert set(only_a) == {"type", "seq", "id", "level", "text", "from"}
        assert await ws_a.receive_nothing(timeout=0.2)
        await ws_a.disconnect()
        await ws_b.disconnect()

    asyncio.run(scenario())
    hub_messages = [m for group, m in sent if group == hub.GROUP]
    # the extension, the message to pend01, and the pool message in two chunks
    assert [len(m["seqs"]) for m in hub_messages] == [1, 1, 1, 1]
    replay = bearer("get", "/api/v1/session/events/", a["code"]).json()["events"]
    assert [(e["seq"], e.get("text")) for e in replay] == [(1, "Everyone")]
