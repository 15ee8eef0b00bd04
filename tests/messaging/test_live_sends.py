"""booking.live with the in-memory channel layer: sends go to the loop the websockets wait
in, and only while that loop runs."""

import asyncio
import gc
import threading
import warnings

import pytest
from channels.layers import InMemoryChannelLayer

from booking import live


@pytest.fixture
def layer(monkeypatch):
    layer = InMemoryChannelLayer()
    monkeypatch.setattr(live, "get_channel_layer", lambda: layer)
    return layer


def in_loop(loop: asyncio.AbstractEventLoop, coroutine):  # noqa: ANN201 - its result
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=5)


def test_a_send_reaches_a_socket_of_the_running_loop_and_none_is_left_once_it_stops(
    layer, monkeypatch
):
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        monkeypatch.setattr(live, "_loop", loop)
        in_loop(loop, layer.group_add("session.1", "socket.1"))

        assert live.group_send_many([("session.1", {"type": "event", "n": 1})]) == 0
        assert in_loop(loop, layer.receive("socket.1")) == {"type": "event", "n": 1}
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)

    # The loop stopped (not closed): nothing is handed to it, nothing is left un-run.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert live.group_send_many([("session.1", {"type": "event", "n": 2})]) == 0
        loop.close()
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]


def test_without_a_remembered_loop_nothing_is_sent(layer, monkeypatch):
    monkeypatch.setattr(live, "_loop", None)
    assert live.group_send_many([("session.1", {"type": "event"})]) == 0
    assert live.group_send_many([]) == 0
