"""HTTP under an ASGI server (uvicorn, daphne) through Django's WSGI handler, on a pool of threads.

Django's ASGI handler runs every synchronous part of a request (each middleware, the view,
the signals) through `sync_to_async`, on a thread of the request's own: each request in
flight holds a thread, 16 or 32 of them contend for one interpreter, and every synchronous
step costs a handoff between the event loop and that thread. Every view here is
synchronous, so the bridge below hands the whole request to the WSGI handler in one step
instead, on a pool of `WEB_THREADS` threads: while one request waits on the database
another runs, the others wait their turn in order, and a request costs two handoffs (in and
out) whatever the middleware.

The request body is read before the application runs (spooled to disk above
`FILE_UPLOAD_MAX_MEMORY_SIZE`, as Django's ASGI handler does), and the response is built
whole before it is sent: no view here streams. Each thread keeps its PostgreSQL connection
from one request to the next (config/postgresql), unless a request left it unusable or it is
due back to the pool.

A request that waited longer than `queue_timeout` seconds for a thread is not run: it gets
503 `server_busy` with `Retry-After`, and nothing is changed. Requests wait that long only
when the threads are stuck (the database unreachable: each waits for a connection up to the
pool's timeout) or the process is far behind; answering the queue at once, rather than
each in turn after the pool's timeout, keeps every answer within about the pool's timeout
plus `queue_timeout`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

from booking.api_errors import error_body
from booking.errors import MESSAGES

logger = logging.getLogger("django.request")

BUSY_BODY = json.dumps(error_body("server_busy", MESSAGES["server_busy"])).encode()
ERROR_BODY = json.dumps(error_body("server_error", MESSAGES["server_error"])).encode()
BUSY_HEADERS = [(b"content-type", b"application/json"), (b"retry-after", b"1")]


class WSGIBridge:
    """An ASGI application for `http` scopes that runs a WSGI application on threads."""

    def __init__(
        self,
        application: WSGIHandler,
        threads: int,
        queue_timeout: float = 0,
        clock=time.monotonic,
    ) -> None:
        self.application = application
        self.executor = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="http", initializer=_keep_connections
        )
        self.queue_timeout = queue_timeout  # 0: requests wait for a thread however long
        self.clock = clock

    async def __call__(self, scope, receive, send) -> None:
        body = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                body.close()
                return  # the client left before sending the whole request
            body.write(message.get("body", b""))
            if not message.get("more_body", False):
                break
        request = wsgi_environ(scope, body)
        # A chunked request has no length; the WSGI handler would read nothing of it.
        request.setdefault("CONTENT_LENGTH", str(body.tell()))
        body.seek(0)
        loop = asyncio.get_running_loop()
        # The thread owns the body from here (it closes it), even if this task is cancelled.
        status, headers, content = await loop.run_in_executor(
            self.executor, self.respond, request, self.clock()
        )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if scope["method"] == "HEAD":
            content = b""
        await send({"type": "http.response.body", "body": content})

    def respond(
        self, environ: dict, queued_at: float
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Run the application in this thread, to the end (its `close()` included), unless the
        request waited for the thread past the queue's timeout."""
        waited = self.clock() - queued_at
        if self.queue_timeout and waited > self.queue_timeout:
            environ["wsgi.input"].close()
            logger.error(  # as Django logs its own 5xx answers
                "Service Unavailable (waited %.1f s for a thread): %s",
                waited,
                environ.get("PATH_INFO"),
            )
            return 503, list(BUSY_HEADERS), BUSY_BODY
        started: list = []

        def start_response(status: str, headers: list, exc_info=None):
            started[:] = [int(status.split(" ", 1)[0]), headers]
            return lambda chunk: chunks.append(chunk)

        chunks: list[bytes] = []
        try:
            result = self.application(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
            status, headers = started
        except Exception:
            # Django's handler turns a view's exceptions into responses; this is for a
            # failure outside it, logged as Django logs a request's failure.
            logger.exception("Internal Server Error: %s", environ.get("PATH_INFO"))
            return 500, [(b"content-type", b"application/json")], ERROR_BODY
        finally:
            environ["wsgi.input"].close()
        return (
            status,
            [(name.lower().encode("latin1"), value.encode("latin1")) for name, value in headers],
            b"".join(chunks),
        )


def _keep_connections() -> None:
    """Each request thread keeps its database connections between requests (the threads
    are few and live as long as the process; config/postgresql)."""
    from django.db import connections

    for conn in connections.all(initialized_only=False):
        conn.keep_between_requests = True


def wsgi_environ(scope: dict, body) -> dict:
    """The WSGI environ of an ASGI `http` scope (PEP 3333 and the ASGI spec's mapping)."""
    script_name = scope.get("root_path", "")
    path = scope["path"]
    if script_name and path.startswith(script_name):
        path = path[len(script_name) :]
    server = scope.get("server") or ("unknown", 0)
    result = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": script_name.encode("utf-8").decode("latin1"),
        "PATH_INFO": path.encode("utf-8").decode("latin1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin1"),
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    client = scope.get("client")
    if client:
        result["REMOTE_ADDR"] = client[0]
        result["REMOTE_PORT"] = str(client[1])
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin1")
        if "_" in name:
            continue  # as Django's ASGI handler: no spoofing through underscores
        if name == "content-length":
            key = "CONTENT_LENGTH"
        elif name == "content-type":
            key = "CONTENT_TYPE"
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
        value = raw_value.decode("latin1")
        result[key] = f"{result[key]},{value}" if key in result else value
    return result
