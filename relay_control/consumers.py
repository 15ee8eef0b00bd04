"""/ws/relay/: relays holding a relay API token receive revocations as they commit."""

import asyncio
import contextlib

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.utils import timezone

from booking.live import remember_loop
from relay_control.api_tokens import relay_for_token
from relay_control.feed import feed_cursor
from relay_control.push import relay_group

AUTH_TIMEOUT = 10
CLOSE_UNAUTHORISED = 4401


class RelayConsumer(AsyncJsonWebsocketConsumer):
    relay_id: int | None = None

    async def connect(self) -> None:
        remember_loop()
        await self.accept()
        self._auth_timer = asyncio.get_running_loop().call_later(
            AUTH_TIMEOUT, lambda: asyncio.ensure_future(self._auth_timeout())
        )

    async def _auth_timeout(self) -> None:
        if self.relay_id is None:
            await self.close(code=CLOSE_UNAUTHORISED)

    async def receive_json(self, content, **kwargs) -> None:
        if self.relay_id is not None:
            return  # nothing else is expected from a relay
        token = content.get("token") if isinstance(content, dict) else None
        if not isinstance(content, dict) or content.get("type") != "auth" or not token:
            await self.close(code=CLOSE_UNAUTHORISED)
            return
        identity = await database_sync_to_async(relay_for_token)(token, now=timezone.now())
        if identity is None:
            await self.close(code=CLOSE_UNAUTHORISED)
            return
        self._auth_timer.cancel()
        self.relay_id = identity.relay_id
        await self.channel_layer.group_add(relay_group(self.relay_id), self.channel_name)
        cursor = await database_sync_to_async(feed_cursor)()
        await self.send_json({"type": "ready", "seq": cursor.value})

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        try:
            await super().receive(text_data=text_data, bytes_data=bytes_data, **kwargs)
        except ValueError:  # not JSON
            await self.close(code=CLOSE_UNAUTHORISED)

    async def revocation_event(self, event: dict) -> None:
        await self.send_json(event["payload"])

    async def disconnect(self, code: int) -> None:
        with contextlib.suppress(AttributeError):
            self._auth_timer.cancel()
        if self.relay_id is not None:
            await self.channel_layer.group_discard(relay_group(self.relay_id), self.channel_name)
