"""/ws/relay/: relays receive revocations as they commit."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from config.asgi import application
from relay_control.api_tokens import relay_token_create
from relay_control.push import _announce
from tests.relay_control.test_feed import revoke

pytestmark = pytest.mark.django_db(transaction=True)


async def connect() -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, "/ws/relay/")
    connected, _ = await communicator.connect()
    assert connected
    return communicator


def test_a_relay_hears_of_its_revocations(lab):
    _, token = relay_token_create(relay=lab.relay, now=timezone.now())

    async def scenario():
        ws = await connect()
        await ws.send_json_to({"type": "auth", "token": token})
        ready = await ws.receive_json_from(timeout=5)
        assert ready == {"type": "ready", "seq": 0}
        revocation = await sync_to_async(revoke)(lab, lab.pend00)
        await sync_to_async(_announce)(revocation.pk)
        event = await ws.receive_json_from(timeout=5)
        assert event == {
            "type": "revocation",
            "seq": revocation.seq,
            "booking_id": str(revocation.booking_id),
            "exp": int(revocation.exp.timestamp()),
        }
        await ws.disconnect()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "first",
    [{"type": "auth", "token": "r_" + "x" * 43}, {"type": "auth"}, {"type": "hello"}, "not json"],
)
def test_a_bad_or_missing_token_is_closed_with_4401(lab, first):
    async def scenario():
        ws = await connect()
        if isinstance(first, str):
            await ws.send_to(text_data=first)
        else:
            await ws.send_json_to(first)
        message = await ws.receive_output(timeout=5)
        assert message == {"type": "websocket.close", "code": 4401}

    asyncio.run(scenario())


def test_another_relays_revocation_is_not_sent(lab):
    from booking.models import Stream
    from tests.factories import make_relay

    relay_b = make_relay("relay-b")
    spin = lab.other_pool.experiments.get()
    Stream.objects.filter(experiment=spin).update(relay=relay_b)
    _, token = relay_token_create(relay=lab.relay, now=timezone.now())

    async def scenario():
        ws = await connect()
        await ws.send_json_to({"type": "auth", "token": token})
        await ws.receive_json_from(timeout=5)
        other = await sync_to_async(revoke)(lab, spin)
        await sync_to_async(_announce)(other.pk)
        mine = await sync_to_async(revoke)(lab, lab.pend00)
        await sync_to_async(_announce)(mine.pk)
        event = await ws.receive_json_from(timeout=5)
        assert event["seq"] == mine.seq  # the first thing it hears is its own
        await ws.disconnect()

    asyncio.run(scenario())
