"""A stand-in for the practable relay: its access API and its websocket crossbar.

It behaves as the real relay does towards a booking platform, so tests can exercise our
tokens, the deny push and the relay agent against something that answers like production:

- `POST /session/{topic}`: the stream token raw in `Authorization` (a `Bearer ` prefix makes
  it unreadable). Every unreadable, forged or misdirected token is a 500 "token invalid"; a
  token without the stream claims, or for another topic, a 401; a deny-listed booking a 400.
  Otherwise 200 `{"uri": "ws://.../ws/session/{topic}?code=<one-time code>"}`.
- `POST /bids/deny?bid=&exp=` (admin token): 204; the booking is refused until `exp`, its
  unused codes are cancelled and its live websockets dropped at once, without a close frame.
  An `exp` in the past is a 400. `GET /bids/deny` (admin token) lists the denied bookings.
- The websocket: an upgrade always completes; only a fresh, valid code gets messages
  (`{"topic", "n"}` every 100 ms). The connection is dropped when its token expires.
- Nothing survives a restart: the deny list lives in memory, as in the real relay.

Run it: `python -m tests.support.practable_relay --port 3000 --secret-env RELAY_SECRET
--audience http://127.0.0.1:3000`. It prints `READY <port>` once listening, logs to stderr
and stops on SIGTERM or SIGINT. In a test, `build_app()` gives the same relay in-process.
"""

import argparse
import asyncio
import json
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

log = logging.getLogger("practable_relay")

CODE_SECONDS = 30
SEND_EVERY = 0.1
TOKEN_INVALID = "token invalid"
WRONG_TOPIC = "Token Wrong Topic"
MISSING_CLAIMS = "Token Missing Required Claims"
NO_BOOKING = "empty bookingID field is not permitted"
DENIED = "bookingID has been deny-listed, probably because the session was cancelled"
# How the relay would have unmarshalled each claim: a wrong type makes the token unreadable.
CLAIM_TYPES: dict[str, type | tuple[type, ...]] = {
    "booking_id": str,
    "topic": str,
    "prefix": str,
    "scopes": list,
    "exp": (int, float),
    "nbf": (int, float),
    "iat": (int, float),
}


@dataclass
class Grant:
    """What a one-time code stands for."""

    booking_id: str
    topic: str
    prefix: str
    scopes: list[str]
    exp: int
    nbf: int
    issued_at: float


@dataclass(eq=False)
class Connection:
    booking_id: str
    topic: str
    request: web.Request
    tasks: list[asyncio.Handle | asyncio.Task] = field(default_factory=list)

    def drop(self) -> None:
        """Cut the TCP connection: the client sees 1006, as with the real relay."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()


class RelayState:
    def __init__(self, *, secret: bytes, audience: str, clock: Callable[[], float]) -> None:
        self.secret = secret
        self.audience = audience
        self.clock = clock
        self.denied: dict[str, int] = {}
        self.codes: dict[str, Grant] = {}
        self.live: dict[str, set[Connection]] = {}
        self.deny_calls: list[tuple[str, int]] = []

    def is_denied(self, booking_id: str) -> bool:
        return booking_id in self.deny_list()

    def deny_list(self) -> list[str]:
        now = self.clock()
        self.denied = {bid: exp for bid, exp in self.denied.items() if exp >= now}
        return sorted(self.denied)

    def deny(self, booking_id: str, exp: int) -> int:
        self.deny_calls.append((booking_id, exp))
        self.denied[booking_id] = exp
        self.codes = {c: g for c, g in self.codes.items() if g.booking_id != booking_id}
        dropped = self.live.pop(booking_id, set())
        for connection in dropped:
            connection.drop()
        return len(dropped)

    def issue(self, grant: Grant) -> str:
        code = secrets.token_urlsafe(24)
        self.codes[code] = grant
        return code

    def redeem(self, code: str, topic: str) -> tuple[Grant | None, str]:
        grant = self.codes.pop(code, None)
        now = self.clock()
        if grant is None:
            return None, "unknown, used or cancelled code"
        if now > grant.issued_at + CODE_SECONDS:
            return None, "code expired"
        if grant.topic != topic:
            return None, "code for another topic"
        if grant.nbf > now or grant.exp < now:
            return None, "token not valid now"
        if self.is_denied(grant.booking_id):
            return None, "booking deny-listed"
        if not {"read", "write"} & set(grant.scopes):
            return None, "no read or write scope"
        return grant, ""

    def register(self, connection: Connection) -> None:
        self.live.setdefault(connection.booking_id, set()).add(connection)

    def unregister(self, connection: Connection) -> None:
        connections = self.live.get(connection.booking_id)
        if connections is not None:
            connections.discard(connection)
            if not connections:
                del self.live[connection.booking_id]

    def drop_all(self) -> None:
        for connections in list(self.live.values()):
            for connection in connections:
                connection.drop()
        self.live.clear()


RELAY = web.AppKey("relay", RelayState)


ERRORS: dict[int, type[web.HTTPException]] = {
    401: web.HTTPUnauthorized,
    422: web.HTTPUnprocessableEntity,
    500: web.HTTPInternalServerError,
}


def _json_error(status: int, code: int | str, message: str) -> web.HTTPException:
    body = json.dumps({"code": code, "message": message})
    return ERRORS[status](text=body, content_type="application/json")


def _read_token(token: str, relay: RelayState) -> dict | None:
    # Imported here: sessions_app needs Django's app registry, which main() loads first.
    from sessions_app.tokens import TokenError, read_as_practable_relay

    try:
        claims = read_as_practable_relay(token, secret=relay.secret, audience=relay.audience)
    except TokenError:
        return None
    for name, kind in CLAIM_TYPES.items():
        if name in claims and (
            not isinstance(claims[name], kind) or isinstance(claims[name], bool)
        ):
            return None
    if not all(isinstance(scope, str) for scope in claims.get("scopes", [])):
        return None
    return claims


def _claims(request: web.Request) -> dict:
    token = request.headers.get("Authorization", "")
    if not token:
        raise _json_error(401, 401, "unauthenticated for invalid credentials")
    claims = _read_token(token, request.app[RELAY])
    if claims is None:
        raise _json_error(500, 500, TOKEN_INVALID)
    return claims


def _admin_claims(request: web.Request) -> dict:
    claims = _claims(request)
    if "relay:admin" not in claims.get("scopes", []):
        raise _json_error(401, "401", "is token missing relay:admin scope?")
    return claims


async def session(request: web.Request) -> web.Response:
    relay = request.app[RELAY]
    claims = _claims(request)
    topic = request.match_info["topic"]
    if not (claims.get("topic") and claims.get("scopes") and claims.get("prefix")):
        return web.json_response(MISSING_CLAIMS, status=401)
    if claims["topic"] != topic:
        return web.json_response(WRONG_TOPIC, status=401)
    booking_id = claims.get("booking_id", "")
    if not booking_id:
        return web.json_response({"code": "400", "message": NO_BOOKING}, status=400)
    if relay.is_denied(booking_id):
        log.info("session refused: booking %s is deny-listed", booking_id)
        return web.json_response({"code": "400", "message": DENIED}, status=400)
    grant = Grant(
        booking_id=booking_id,
        topic=topic,
        prefix=claims["prefix"],
        scopes=list(claims["scopes"]),
        exp=int(claims["exp"]),
        nbf=int(claims.get("nbf", 0)),
        issued_at=relay.clock(),
    )
    code = relay.issue(grant)
    scheme = "wss" if request.secure else "ws"
    log.info("session: booking %s, topic %s: code issued", booking_id, topic)
    return web.json_response(
        {"uri": f"{scheme}://{request.host}/ws/{grant.prefix}/{topic}?code={code}"}
    )


def _int_param(request: web.Request, name: str) -> int:
    value = request.query.get(name, "")
    if not value:
        raise _json_error(422, 602, f"{name} in query is required")
    try:
        return int(value)
    except ValueError:
        raise _json_error(422, 601, f"{name} in query must be of type int64") from None


async def deny(request: web.Request) -> web.Response:
    relay = request.app[RELAY]
    _admin_claims(request)
    booking_id = request.query.get("bid", "")
    if not booking_id:
        raise _json_error(422, 602, "bid in query is required")
    exp = _int_param(request, "exp")
    if exp < relay.clock():
        message = f"booking expiry time (exp) of [{exp}] missing or in the past"
        return web.json_response({"code": "400", "message": message}, status=400)
    dropped = relay.deny(booking_id, exp)
    log.info("deny: booking %s until %d, %d connection(s) dropped", booking_id, exp, dropped)
    return web.Response(status=204)


async def deny_list(request: web.Request) -> web.Response:
    _admin_claims(request)
    return web.json_response({"booking_ids": request.app[RELAY].deny_list()})


async def _heartbeat(ws: web.WebSocketResponse, topic: str) -> None:
    n = 0
    while not ws.closed:
        n += 1
        try:
            await ws.send_json({"topic": topic, "n": n})
        except (ConnectionError, RuntimeError):
            return
        await asyncio.sleep(SEND_EVERY)


async def _drain(ws: web.WebSocketResponse) -> None:
    # The stand-in has no other clients to relay to: what a client sends is dropped.
    async for _ in ws:
        pass


async def crossbar(request: web.Request) -> web.WebSocketResponse:
    relay = request.app[RELAY]
    topic = request.match_info["topic"]
    if request.match_info["prefix"] != "session":
        raise web.HTTPNotFound()
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    grant, refusal = relay.redeem(request.query.get("code", ""), topic)
    if grant is None:
        # As the real relay: the upgrade has happened, so the client just hears nothing.
        log.info("websocket on %s left silent: %s", topic, refusal)
        await _drain(ws)
        return ws
    connection = Connection(grant.booking_id, topic, request)
    relay.register(connection)
    loop = asyncio.get_running_loop()
    if "read" in grant.scopes:
        connection.tasks.append(asyncio.create_task(_heartbeat(ws, topic)))
    connection.tasks.append(loop.call_later(max(0.0, grant.exp - relay.clock()), connection.drop))
    log.info("websocket on %s open for booking %s", topic, grant.booking_id)
    try:
        await _drain(ws)
    finally:
        for task in connection.tasks:
            task.cancel()
        relay.unregister(connection)
        log.info("websocket on %s closed for booking %s", topic, grant.booking_id)
    return ws


class AccessLogger(AbstractAccessLogger):
    """Method, path and status only: the query may hold a one-time code, headers a token."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %s", request.method, request.path, response.status)


def build_app(
    *, secret: str | bytes, audience: str, clock: Callable[[], float] = time.time
) -> web.Application:
    key = secret.encode() if isinstance(secret, str) else secret
    app = web.Application()
    app[RELAY] = RelayState(secret=key, audience=audience, clock=clock)
    app.router.add_post("/session/{topic}", session)
    app.router.add_post("/bids/deny", deny)
    app.router.add_get("/bids/deny", deny_list)
    app.router.add_get("/ws/{prefix}/{topic}", crossbar)

    async def drop_connections(app: web.Application) -> None:
        app[RELAY].drop_all()

    app.on_shutdown.append(drop_connections)
    return app


async def serve(*, host: str, port: int, secret: str, audience: str) -> None:
    runner = web.AppRunner(
        build_app(secret=secret, audience=audience), access_log_class=AccessLogger
    )
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"READY {runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("stopping")
    await runner.cleanup()


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.support.practable_relay")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="0: any free port")
    parser.add_argument("--audience", required=True, help="as the tokens' aud must name it")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--secret-env", help="environment variable holding the HS256 secret")
    source.add_argument("--secret", help="the secret itself (visible to ps: tests only)")
    args = parser.parse_args(argv)
    if args.secret_env:
        args.secret = os.environ.get(args.secret_env, "")
    if not args.secret:
        parser.error("the relay secret is empty")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()  # also sets up logging: to stderr, each line naming its logger
    asyncio.run(serve(host=args.host, port=args.port, secret=args.secret, audience=args.audience))
    return 0


if __name__ == "__main__":
    sys.exit(main())
