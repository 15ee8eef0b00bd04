"""Events for many sessions at once reach each web process in one channel-layer message.

One message per session group costs the sender four Redis round trips per session: a
broadcast to 1,000 sessions took more than a second to go out (docs/benchmarks.md). So
every web process runs one listener, a member of the group `live-hub`. An event bound
for many sessions is sent to that group in chunks that carry each session's `seq`; every
process hands the event to the sockets it holds for those sessions and ignores the rest.

Smaller fan-outs keep going to the per-session groups. Live delivery stays best effort:
a socket that misses an event sees the gap in `seq` and replays from the database.
"""

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

GROUP = "live-hub"
MESSAGE_TYPE = "hub.events"
MIN_SESSIONS = 20  # fewer recipients than this: one message per session group
CHUNK = 500  # sessions per hub message
JOIN_WAIT = 5.0  # seconds a socket waits for its process's listener to join the group
REJOIN_SECONDS = 60  # the membership is renewed: a restarted Redis has forgotten it
RETRY_SECONDS = 1.0

_sockets: dict[str, set] = {}  # session id: the sockets of this process for it
_listener: "Listener | None" = None


def messages(event: dict, seqs: dict[str, int]) -> Iterator[tuple[str, dict]]:
    """(group, message) pairs carrying `event` to the sessions of `seqs`, each with its seq."""
    body = {k: v for k, v in event.items() if k not in ("type", "seq")}
    ids = list(seqs)
    for start in range(0, len(ids), CHUNK):
        chunk = {i: seqs[i] for i in ids[start : start + CHUNK]}
        yield GROUP, {"type": MESSAGE_TYPE, "event": event["type"], "body": body, "seqs": chunk}


class Listener:
    """The process's member of `live-hub`, running on the web server's event loop."""

    def __init__(self, layer) -> None:
        self.layer = layer
        self.loop = asyncio.get_running_loop()
        self.joined = asyncio.Event()
        self.task = self.loop.create_task(self._run())

    def usable(self, layer) -> bool:
        return (
            self.layer is layer and self.loop is asyncio.get_running_loop() and not self.task.done()
        )

    async def _run(self) -> None:
        channel = await self.layer.new_channel()
        rejoin = self.loop.create_task(self._rejoin(channel))
        try:
            while True:
                try:
                    message = await self.layer.receive(channel)
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # Redis down: the sockets replay once it is back
                    log.warning("live hub: receive failed (%s)", type(error).__name__)
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                if message.get("type") == MESSAGE_TYPE:
                    await _dispatch(message)
        finally:
            rejoin.cancel()

    async def _rejoin(self, channel: str) -> None:
        while True:
            try:
                await self.layer.group_add(GROUP, channel)
            except Exception as error:
                log.warning("live hub: joining failed (%s)", type(error).__name__)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            self.joined.set()
            await asyncio.sleep(REJOIN_SECONDS)

    def stop(self) -> None:
        self.task.cancel()


async def _dispatch(message: dict) -> None:
    kind, body = message["event"], message["body"]
    for session_id, seq in message["seqs"].items():
        for socket in tuple(_sockets.get(session_id, ())):
            try:
                await socket.platform_event({"event": {"type": kind, "seq": seq, **body}})
            except Exception:  # one closed socket must not stop the others
                log.warning("live hub: a send to a socket failed", exc_info=True)


async def join(session_id: object, socket) -> None:
    """Route hub events for `session_id` to `socket` (a consumer with platform_event)."""
    global _listener
    layer = get_channel_layer()
    if _listener is None or not _listener.usable(layer):
        if _listener is not None:
            if _listener.loop is asyncio.get_running_loop():
                _listener.stop()  # another channel layer (settings changed)
            else:
                _sockets.clear()  # the sockets of a finished loop are gone
        _listener = Listener(layer)
    _sockets.setdefault(str(session_id), set()).add(socket)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_listener.joined.wait(), JOIN_WAIT)


def leave(session_id: object, socket) -> None:
    sockets = _sockets.get(str(session_id))
    if sockets is not None:
        sockets.discard(socket)
        if not sockets:
            del _sockets[str(session_id)]
