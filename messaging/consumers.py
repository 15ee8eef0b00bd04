"""Browser websockets: /ws/session/ (session code as the first message) and /ws/user/
(the signed-in user's cookie). Both check the Origin; both re-check on every event."""

import asyncio
import contextlib

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.utils import timezone

from booking.live import remember_loop
from booking.origins import origin_is_allowed
from messaging import events, hub
from messaging.models import SessionChannel, UserChannel
from messaging.services import session_group, user_group
from sessions_app.models import Session
from sessions_app.services import booking_is_over, issue_stream_tokens, session_for_code

AUTH_TIMEOUT = 10


def _origin(scope: dict) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"origin":
            return value.decode("latin-1")
    return None


@database_sync_to_async
def _origin_ok(origin: str | None) -> bool:
    return origin_is_allowed(origin)


@database_sync_to_async
def _session_for(code: str) -> tuple[Session | None, bool, int]:
    session = session_for_code(code)
    if session is None:
        return None, False, 0
    over = booking_is_over(session.booking, timezone.now())
    last = SessionChannel.objects.filter(session=session).values_list("last_seq", flat=True).first()
    return session, over, last or 0


@database_sync_to_async
def _fresh_streams(session_id: object) -> list[dict]:
    session = Session.objects.select_related("booking").get(pk=session_id)
    if booking_is_over(session.booking, timezone.now()):
        return []
    return issue_stream_tokens(
        session=session, booking=session.booking, now=timezone.now(), by=None
    )


@database_sync_to_async
def _user_last_seq(user_id: int) -> int:
    return (
        UserChannel.objects.filter(user_id=user_id).values_list("last_seq", flat=True).first() or 0
    )


class SessionConsumer(AsyncJsonWebsocketConsumer):
    session_id = None

    async def connect(self) -> None:
        remember_loop()
        if not await _origin_ok(_origin(self.scope)):
            await self.close(code=events.CLOSE_UNAUTHORISED)
            return
        await self.accept()
        self._timer = asyncio.get_running_loop().call_later(
            AUTH_TIMEOUT, lambda: asyncio.ensure_future(self._timeout())
        )

    async def _timeout(self) -> None:
        if self.session_id is None:
            await self.close(code=events.CLOSE_UNAUTHORISED)

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        try:
            await super().receive(text_data=text_data, bytes_data=bytes_data, **kwargs)
        except ValueError:
            if self.session_id is None:
                await self.close(code=events.CLOSE_UNAUTHORISED)

    async def receive_json(self, content, **kwargs) -> None:
        if self.session_id is not None:
            return  # the UI talks to the REST endpoints; the socket only listens
        code = content.get("session") if isinstance(content, dict) else None
        if (
            not isinstance(content, dict)
            or content.get("type") != "auth"
            or not isinstance(code, str)
        ):
            await self.close(code=events.CLOSE_UNAUTHORISED)
            return
        session, over, last_seq = await _session_for(code)
        if session is None:
            await self.close(code=events.CLOSE_UNAUTHORISED)
            return
        if over:
            await self.close(code=events.CLOSE_OVER)
            return
        self._timer.cancel()
        self.session_id = session.pk
        await self.channel_layer.group_add(session_group(session.pk), self.channel_name)
        await hub.join(session.pk, self)
        await self.send_json({"type": "ready", "seq": last_seq})

    async def platform_event(self, message: dict) -> None:
        event = dict(message["event"])
        if event["type"] == events.SESSION_EXTENDED:
            event["streams"] = await _fresh_streams(self.session_id)
        await self.send_json(event)
        if event["type"] == events.SESSION_CANCELLED:
            await self.close(code=events.CLOSE_OVER)

    async def disconnect(self, code: int) -> None:
        with contextlib.suppress(AttributeError):
            self._timer.cancel()
        if self.session_id is not None:
            hub.leave(self.session_id, self)
            await self.channel_layer.group_discard(
                session_group(self.session_id), self.channel_name
            )


class UserConsumer(AsyncJsonWebsocketConsumer):
    user_id = None

    async def connect(self) -> None:
        remember_loop()
        user = self.scope.get("user")
        if not await _origin_ok(_origin(self.scope)) or user is None or not user.is_authenticated:
            await self.close(code=events.CLOSE_UNAUTHORISED)
            return
        self.user_id = user.pk
        await self.accept()
        await self.channel_layer.group_add(user_group(user.pk), self.channel_name)
        await self.send_json({"type": "ready", "seq": await _user_last_seq(user.pk)})

    async def receive_json(self, content, **kwargs) -> None:
        return  # nothing is expected from the browser

    async def platform_event(self, message: dict) -> None:
        await self.send_json(message["event"])

    async def disconnect(self, code: int) -> None:
        if self.user_id is not None:
            await self.channel_layer.group_discard(user_group(self.user_id), self.channel_name)
