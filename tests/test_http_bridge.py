"""config/http_bridge.py: HTTP under an ASGI server, through Django's WSGI handler on threads."""

import asyncio
import json
import threading

import pytest
from django.core.wsgi import get_wsgi_application

from config.http_bridge import WSGIBridge, wsgi_environ


def scope(method="GET", path="/", headers=(), **extra) -> dict:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "root_path": "",
        "query_string": b"",
        "headers": list(headers),
        "client": ("203.0.113.9", 51000),
        "server": ("lab.example.org", 443),
    } | extra


def call(app, request: dict, messages=None) -> list[dict]:
    """Run one request through `app`; returns what it sent."""
    pending = list(messages if messages is not None else [{"type": "http.request"}])
    sent: list[dict] = []

    async def receive():
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(request, receive, send))
    return sent


def echo(environ_: dict, start_response):
    """A WSGI application that answers with what it was given."""
    length = int(environ_.get("CONTENT_LENGTH") or 0)
    body = environ_["wsgi.input"].read(length)
    answer = {
        "method": environ_["REQUEST_METHOD"],
        "body": body.decode(),
        "thread": threading.current_thread().name,
    }
    start_response("201 Created", [("Content-Type", "application/json"), ("X-Seen", "yes")])
    return [json.dumps(answer).encode()]


def test_the_environ_carries_the_scope_as_pep_3333_says():
    request = scope(
        method="POST",
        path="/app/api/v1/bookings/é/",
        root_path="/app",
        query_string=b"a=1&b=%C3%A9",
        headers=[
            (b"content-type", b"application/json"),
            (b"content-length", b"2"),
            (b"accept", b"text/html"),
            (b"accept", b"application/json"),
            (b"x_forwarded_for", b"198.51.100.1"),  # underscores: dropped, as Django does
            (b"x-request-id", b"abc"),
        ],
    )
    result = wsgi_environ(request, body=None)
    assert result["REQUEST_METHOD"] == "POST"
    assert result["SCRIPT_NAME"] == "/app"
    assert result["PATH_INFO"] == "/api/v1/bookings/é/".encode().decode("latin1")
    assert result["QUERY_STRING"] == "a=1&b=%C3%A9"
    assert result["CONTENT_TYPE"] == "application/json"
    assert result["CONTENT_LENGTH"] == "2"
    assert result["HTTP_ACCEPT"] == "text/html,application/json"
    assert result["HTTP_X_REQUEST_ID"] == "abc"
    assert "HTTP_X_FORWARDED_FOR" not in result
    assert result["REMOTE_ADDR"] == "203.0.113.9"
    assert (result["SERVER_NAME"], result["SERVER_PORT"]) == ("lab.example.org", "443")
    assert result["wsgi.url_scheme"] == "https"
    assert result["SERVER_PROTOCOL"] == "HTTP/1.1"


def test_a_request_runs_whole_on_a_pool_thread_and_its_response_is_sent():
    bridge = WSGIBridge(echo, threads=2)
    body = b'{"pool": "pendulums"}'
    sent = call(
        bridge,
        scope("POST", headers=[(b"content-length", str(len(body)).encode())]),
        [{"type": "http.request", "body": body}],
    )
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 201
    assert (b"x-seen", b"yes") in sent[0]["headers"]
    answer = json.loads(sent[1]["body"])
    assert answer["body"] == body.decode() and answer["method"] == "POST"
    assert answer["thread"].startswith("http")
    assert answer["thread"] != threading.current_thread().name


def test_a_body_in_several_messages_without_a_length_arrives_whole():
    bridge = WSGIBridge(echo, threads=1)
    sent = call(
        bridge,
        scope("POST"),
        [
            {"type": "http.request", "body": b"first,", "more_body": True},
            {"type": "http.request", "body": b"second", "more_body": False},
        ],
    )
    assert json.loads(sent[1]["body"])["body"] == "first,second"


def test_head_answers_the_headers_without_the_body():
    sent = call(WSGIBridge(echo, threads=1), scope("HEAD"))
    assert sent[0]["status"] == 201
    assert sent[1]["body"] == b""


def test_a_client_gone_before_its_body_ends_runs_nothing():
    calls = []

    def app(environ_, start_response):
        calls.append(environ_)
        start_response("200 OK", [])
        return [b""]

    sent = call(
        WSGIBridge(app, threads=1),
        scope("POST"),
        [{"type": "http.request", "body": b"part", "more_body": True}],  # then disconnect
    )
    assert sent == [] and calls == []


@pytest.mark.parametrize("threads", [2, 3])
def test_requests_of_one_process_run_at_the_same_time(threads):
    """Each request waits at a barrier for the others: they finish only if they run at once
    (with one thread the barrier breaks and each answers 500)."""
    barrier = threading.Barrier(threads, timeout=10)

    def app(environ_, start_response):
        barrier.wait()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [threading.current_thread().name.encode()]

    bridge = WSGIBridge(app, threads=threads)

    async def together():
        replies = []

        async def one():
            sent = []

            async def receive():
                return {"type": "http.request"}

            async def send(message):
                sent.append(message)

            await bridge(scope(), receive, send)
            replies.append(sent)

        await asyncio.gather(*(one() for _ in range(threads)))
        return replies

    replies = asyncio.run(together())
    assert [r[0]["status"] for r in replies] == [200] * threads
    assert len({r[1]["body"] for r in replies}) == threads  # on as many threads


def test_a_request_that_waited_too_long_for_a_thread_is_answered_busy_without_running(caplog):
    """One thread, stuck in a request (as when the database is unreachable). Of the requests
    queued behind it, the one that waited past the queue's timeout gets 503 server_busy and
    never reaches the application; one that waited less runs. The bridge's clock is the
    test's, moved by hand."""
    now = [0.0]
    release = threading.Event()
    ran: list[str] = []

    def app(environ_, start_response):
        ran.append(environ_["PATH_INFO"])
        if environ_["PATH_INFO"] == "/stuck":
            release.wait(timeout=10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ran"]

    bridge = WSGIBridge(app, threads=1, queue_timeout=3, clock=lambda: now[0])

    async def run(path: str) -> list[dict]:
        sent: list[dict] = []

        async def receive():
            return {"type": "http.request"}

        async def send(message):
            sent.append(message)

        await bridge(scope(path=path), receive, send)
        return sent

    async def scenario():
        stuck = asyncio.ensure_future(run("/stuck"))
        while ran != ["/stuck"]:  # the thread is taken
            await asyncio.sleep(0)
        late = asyncio.ensure_future(run("/late"))  # queued at 0
        await asyncio.sleep(0)
        now[0] = 2.5
        in_time = asyncio.ensure_future(run("/in-time"))  # queued at 2.5
        await asyncio.sleep(0)
        now[0] = 4.0  # /late has waited 4 s, /in-time 1.5 s
        release.set()
        return await asyncio.gather(stuck, late, in_time)

    stuck, late, in_time = asyncio.run(scenario())
    assert stuck[0]["status"] == 200 and in_time[0]["status"] == 200
    assert late[0]["status"] == 503
    assert dict(late[0]["headers"])[b"retry-after"] == b"1"
    assert json.loads(late[1]["body"])["code"] == "server_busy"
    assert ran == ["/stuck", "/in-time"]
    assert "Service Unavailable (waited 4.0 s for a thread): /late" in caplog.text


def test_without_a_queue_timeout_a_request_waits_for_a_thread_however_long():
    now = [0.0]

    def app(environ_, start_response):
        now[0] += 3600
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ran"]

    bridge = WSGIBridge(app, threads=1, queue_timeout=0, clock=lambda: now[0])
    assert [call(bridge, scope())[0]["status"] for _ in range(2)] == [200, 200]


def test_a_failure_outside_django_is_a_500_with_a_code(caplog):
    def broken(environ_, start_response):
        raise RuntimeError("boom")

    sent = call(WSGIBridge(broken, threads=1), scope())
    assert sent[0]["status"] == 500
    assert json.loads(sent[1]["body"]) == {
        "code": "server_error",
        "detail": "Something went wrong on our side.",
    }
    assert "boom" in caplog.text


def test_django_answers_through_the_bridge():
    """The project's own WSGI application: an API error body, with Django's headers."""
    bridge = WSGIBridge(get_wsgi_application(), threads=2)
    sent = call(bridge, scope("GET", "/api/v1/bookings/", scheme="http", server=("testserver", 80)))
    assert sent[0]["status"] in (401, 403)
    headers = dict(sent[0]["headers"])
    assert headers[b"content-type"] == b"application/json"
    assert b"x-content-type-options" in headers
    assert json.loads(sent[1]["body"])["code"] == "not_authenticated"


def test_request_threads_keep_their_database_connections_between_requests():
    from django.db import connections

    def which(environ_, start_response):
        kept = [conn.keep_between_requests for conn in connections.all(initialized_only=False)]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(kept).encode()]

    sent = call(WSGIBridge(which, threads=1), scope())
    assert json.loads(sent[1]["body"]) == [True] * len(connections.all(initialized_only=False))
    # This thread's connections are not the request threads'.
    assert not any(getattr(conn, "keep_between_requests", False) for conn in connections.all())
