"""Sending to the channel layer from any thread, without ever blocking on it for long.

With Redis, a worker thread runs the sends on its own event loop. The in-memory layer
lives in the web process's event loop, so sends are handed to that loop (remembered when
the first websocket connects): from another loop they would not wake the receiver.
"""

import asyncio
import logging
from collections.abc import Iterable

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

log = logging.getLogger(__name__)
# Sends in flight at once; below redis-py's pool of 100 connections, or sends fail.
SEND_BATCH = 50
SEND_TIMEOUT = 5.0
_loop: asyncio.AbstractEventLoop | None = None


def remember_loop() -> None:
    """Called from consumers: the loop the in-memory layer's receivers wait in."""
    global _loop
    _loop = asyncio.get_running_loop()


async def _send_all(layer, items: list[tuple[str, dict]]) -> int:
    failed = 0
    for start in range(0, len(items), SEND_BATCH):
        batch = items[start : start + SEND_BATCH]
        results = await asyncio.gather(
            *(layer.group_send(group, message) for group, message in batch), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, Exception)]
        if errors:
            log.warning("%d of %d live sends failed: %s", len(errors), len(batch), errors[0])
        failed += len(errors)
    return failed


def group_send_many(items: Iterable[tuple[str, dict]]) -> int:
    """Send each (group, message); returns how many failed. Call it off the request path."""
    items = list(items)
    if not items:
        return 0
    layer = get_channel_layer()
    try:
        if isinstance(layer, InMemoryChannelLayer):
            loop = _loop
            if loop is None or not loop.is_running():
                # Nobody has connected to this process, or the loop they waited in has
                # stopped: nobody to tell, and a send handed to it would never run.
                return 0
            sending = _send_all(layer, items)
            try:
                future = asyncio.run_coroutine_threadsafe(sending, loop)
            except RuntimeError:  # the loop closed meanwhile
                sending.close()
                return 0
            return future.result(timeout=SEND_TIMEOUT)
        return async_to_sync(_send_all)(layer, items)
    except Exception:
        log.warning("live sends failed; clients resynchronise from the database", exc_info=True)
        return len(items)
