"""An admin broadcast to 1,000 connected session sockets, across two web processes.

Two web processes (uvicorn, as docker-compose.yml runs them) with the production environment
of docs/operations.md (PostgreSQL and Redis from scripts/services.py, the Redis channel
layer, WEB_PROCESSES=2), each on a port of its own. Every client is a live session: 1,000
running bookings (one per experiment of one pool, inserted with the ORM) whose sessions are
started in this process with the action the session API calls. One aiohttp client process
opens /ws/session/ for each, half on each web process, authenticates with the session code
(Origin: the process's own address, an allowed host) and waits for `ready`.

- broadcast: messaging.services.message_send(target="everyone") called in this process
  (Django set up here against the same database and Redis, so its channel layer is Redis),
  timed from the call to the `message` event's receipt by every client; several rounds;
- cancel: for a sample of clients, POST /api/v1/session/cancel/ with the session code to
  the OTHER web process than the one holding its socket, timed to the
  `session.cancelled` event's receipt;
- memory: the web processes' summed RSS (and PSS) with every client connected, minus
  their idle figure (after a warm-up of a few connections), per connection.

Live events go out from the sender's after-commit thread; an event for many sessions goes
to each web process's hub listener (messaging/hub.py) in chunks. Each round also reports
when the sender's channel layer sends ran and how many failed. With --quiet-wait, each
measurement first waits (bounded) for other programs on the machine to go quiet; the cores
they used anyway are printed next to the figures.

    .venv/bin/python benchmarks/ws_fanout.py           # a table
    .venv/bin/python benchmarks/ws_fanout.py --json    # the same, as JSON
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from collections import Counter
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402
import _live as live  # noqa: E402

CLIENTS = 1000
PROCESSES = 2
ROUNDS = 3
CANCEL_SAMPLE = 50
CANCEL_SPACING = 0.1  # seconds between two sample cancels
WARM_UP = 10  # sockets per process opened and closed before the idle memory figure
CONNECT_CONCURRENCY = 50
RECEIPT_TIMEOUT = 10.0
SETTLE = 3.0  # seconds before a memory figure
SESSION_MINUTES = 30
ASK_TIMEOUT = 180.0  # a bound on any one thing asked of the client process
TARGETS = {"broadcast_p99_ms": 1000.0}


# --- the client process -------------------------------------------------------------------


class Socket:
    """One browser's /ws/session/ and what it has heard."""

    def __init__(self, index: int, code: str, url: str):
        self.index = index
        self.code = code
        self.url = url
        self.ws = None
        self.received: dict[str, float] = {}  # message text: when (monotonic)
        self.cancelled_at: float | None = None
        self.close_code: int | None = None
        self.closed = asyncio.Event()


class Fleet:
    """Many sockets in one process, driven by commands from the benchmark over a pipe."""

    def __init__(self, pipe, urls: list[str], codes: list[str]):
        self.pipe = pipe
        self.urls = urls
        self.codes = codes
        self.sockets: list[Socket] = []
        self.http = None

    async def serve(self) -> None:
        import aiohttp

        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=60)
        ) as self.http:
            while True:
                command = await loop.run_in_executor(None, self.pipe.recv)
                if command["op"] == "stop":
                    break
                try:
                    reply = await getattr(self, command["op"])(**command["args"])
                except Exception as error:  # reported to the benchmark, which stops
                    reply = {"error": f"{type(error).__name__}: {error}"}
                self.pipe.send(reply)
            await asyncio.gather(
                *(s.ws.close() for s in self.sockets if s.ws is not None), return_exceptions=True
            )
        self.pipe.send({"stopped": True})

    async def _open(self, socket: Socket) -> None:
        ws = await self.http.ws_connect(
            "ws" + socket.url.removeprefix("http") + "/ws/session/",
            headers={"Origin": socket.url},  # the page's own address: an allowed host
        )
        await ws.send_json({"type": "auth", "session": socket.code})
        first = await ws.receive(timeout=30)
        event = json.loads(first.data) if first.type.name == "TEXT" else {}
        if event.get("type") != "ready":
            await ws.close()
            raise RuntimeError(f"socket {socket.index}: no ready ({first.type}, {first.data})")
        socket.ws = ws

    async def _read(self, socket: Socket) -> None:
        async for message in socket.ws:
            if message.type.name != "TEXT":
                continue
            at = time.monotonic()
            event = json.loads(message.data)
            if event.get("type") == "message":
                socket.received[event["text"]] = at
            elif event.get("type") == "session.cancelled":
                socket.cancelled_at = at
        socket.close_code = socket.ws.close_code
        socket.closed.set()

    async def warm(self, per_url: int) -> dict:
        """Open, authenticate and close a few sockets on every process."""
        for url in self.urls:
            for i in range(per_url):
                socket = Socket(i, self.codes[i], url)
                await self._open(socket)
                await socket.ws.close()
        return {"warmed": per_url * len(self.urls)}

    async def connect(self, concurrency: int) -> dict:
        limit = asyncio.Semaphore(concurrency)
        self.sockets = [
            Socket(i, code, self.urls[i % len(self.urls)]) for i, code in enumerate(self.codes)
        ]

        async def one(socket: Socket) -> None:
            async with limit:
                await self._open(socket)
            asyncio.get_running_loop().create_task(self._read(socket))

        began = time.monotonic()
        results = await asyncio.gather(*(one(s) for s in self.sockets), return_exceptions=True)
        failures = [str(r) for r in results if isinstance(r, BaseException)]
        return {
            "connected": len(self.sockets) - len(failures),
            "failed": len(failures),
            "failures": failures[:3],
            "seconds": time.monotonic() - began,
        }

    async def collect(self, text: str, timeout: float) -> dict:
        """When each client received the message `text`: waits until every socket still
        open has it, or `timeout`. A client whose socket the server closed counts as
        missing (with the close codes seen)."""
        connected = [s for s in self.sockets if s.ws is not None]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(text in s.received or s.closed.is_set() for s in connected):
                break
            await asyncio.sleep(0.01)  # the receipt times are taken by the readers
        times = [s.received[text] for s in connected if text in s.received]
        closed = Counter(str(s.close_code) for s in connected if s.closed.is_set())
        return {"times": times, "missing": len(connected) - len(times), "closed": closed}

    async def cancel(self, indices: list[int], spacing: float, timeout: float) -> dict:
        """Cancel the sessions of these sockets through the process not holding them."""

        async def one(socket: Socket, delay: float) -> dict:
            await asyncio.sleep(delay)
            other = self.urls[(self.urls.index(socket.url) + 1) % len(self.urls)]
            sent = time.monotonic()
            async with self.http.post(
                other + "/api/v1/session/cancel/",
                json={},
                headers={"Authorization": f"Bearer {socket.code}"},
            ) as response:
                await response.read()
                status = response.status
            answered = time.monotonic()
            try:
                await asyncio.wait_for(socket.closed.wait(), timeout)
            except TimeoutError:
                pass
            return {
                "status": status,
                "sent": sent,
                "answered": answered,
                "event": socket.cancelled_at,
                "close_code": socket.close_code,
            }

        results = await asyncio.gather(
            *(one(self.sockets[i], n * spacing) for n, i in enumerate(indices))
        )
        return {"cancels": results}


def client_process(pipe, urls: list[str], codes: list[str]) -> None:
    live.raise_open_files()
    asyncio.run(Fleet(pipe, urls, codes).serve())


def ask(pipe, op: str, *, wait: float = ASK_TIMEOUT, **args: object) -> dict:
    """Have the client process run `op(**args)`; its answer (waits at most `wait` s)."""
    pipe.send({"op": op, "args": args})
    if not pipe.poll(wait):
        raise TimeoutError(f"the client process did not answer {op!r} within {wait:.0f} s")
    reply = pipe.recv()
    if "error" in reply:
        raise RuntimeError(f"client process, {op}: {reply['error']}")
    return reply


# --- the benchmark process ----------------------------------------------------------------


def make_lab(clients: int) -> list[str]:
    """`clients` running bookings with started sessions; their session codes."""
    from django.utils import timezone

    users = live.bulk_users("fanout-student", clients)
    experiments = live.bulk_experiments("fanout", clients)
    pool = live.make_pool("fanout", experiments, max_duration=2 * 3600)
    bookings = live.running_bookings(
        pool=pool,
        experiments=experiments,
        users=users,
        now=timezone.now(),
        minutes=SESSION_MINUTES,
        first_reference=0,
    )
    common.say(f"[setup] starting {len(bookings)} sessions")
    return [s["code"] for s in live.start_sessions(bookings)]


def memory(pids: list[int]) -> dict:
    tree = common.process_tree(pids)
    return {
        "rss_mb": sum(common.rss_bytes(p) for p in tree) / 2**20,
        "pss_mb": sum(common.pss_bytes(p) for p in tree) / 2**20,
    }


SENDS: list[dict] = []  # what the sender's channel layer sends did, one entry per delivery


def watch_sends() -> None:
    """Time messaging's live deliveries in this process (its after-commit thread)."""
    import messaging.services

    send = messaging.services.group_send_many

    def timed(items) -> int:
        items = list(items)
        began = time.monotonic()
        failed = send(items)
        SENDS.append({"began": began, "done": time.monotonic(), "n": len(items), "failed": failed})
        return failed

    messaging.services.group_send_many = timed


def broadcast(pipe, label: str) -> dict:
    """One admin broadcast to everyone; when each client received it."""
    from django.utils import timezone

    from messaging.services import message_send

    text = f"{label}: the lab closes at six today ({uuid.uuid4().hex[:8]})."
    SENDS.clear()
    called = time.monotonic()
    message = message_send(target="everyone", text=text, now=timezone.now())
    returned = time.monotonic()
    got = ask(pipe, "collect", text=text, timeout=RECEIPT_TIMEOUT)
    sends = list(SENDS)  # the after-commit thread's sends of this broadcast
    return {
        "recipients": message.recipients,
        "received": len(got["times"]),
        "missing": got["missing"],
        "closed_before": dict(got["closed"]),
        "call_ms": (returned - called) * 1000,
        "sends_began_ms": (sends[0]["began"] - called) * 1000 if sends else None,
        "sends_done_ms": (sends[0]["done"] - called) * 1000 if sends else None,
        "sends_failed": sends[0]["failed"] if sends else None,
        "latencies_s": [t - called for t in got["times"]],
        "stats": live.stats_ms(t - called for t in got["times"]),
    }


def cpu_seconds(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds used so far: by each group of process trees, and by this process (the
    sender: message_send and its after-commit thread)."""
    return {name: common.tree_cpu_seconds(roots) for name, roots in pids.items()} | {
        "sender": time.process_time()
    }


def broadcast_rounds(pipe, rounds: int, quiet_wait: float, pids: dict[str, list[int]]) -> dict:
    """`rounds` broadcasts; each round also says how much CPU each part used (ms),
    the wait for every receipt included."""
    detail = []
    for n in range(rounds):
        live.quiet(quiet_wait, "fanout")
        common.say(f"[fanout] broadcast {n + 1}/{rounds}")
        before = cpu_seconds(pids)
        with live.other_load() as load:
            detail.append(broadcast(pipe, f"Broadcast {n + 1}"))
        after = cpu_seconds(pids)
        detail[-1] |= load | {"cpu_ms": {k: (after[k] - before[k]) * 1000 for k in after}}
        time.sleep(1)
    received = [t for r in detail for t in r["latencies_s"]]
    missing = sum(r["missing"] for r in detail)
    return {
        # Every client counts: one that never heard it is infinitely late.
        "all": live.stats_ms(received + [float("inf")] * missing),
        "received": live.stats_ms(received),
        "missing": missing,
        "rounds": [{k: v for k, v in r.items() if k != "latencies_s"} for r in detail],
    }


def run(args: argparse.Namespace) -> dict:
    nofile = live.raise_open_files()
    results: dict = {
        "machine": common.machine(),
        "clients": args.clients,
        "processes": PROCESSES,
        "rounds": args.rounds,
        "open_files": nofile,
        "targets": TARGETS,
    }
    with live.platform("labbook-fanout-", redis=True, WEB_PROCESSES=str(PROCESSES)) as stack:
        codes = make_lab(args.clients)
        watch_sends()
        server = common.start_web(PROCESSES, stack.env, stack.logdir)
        context = get_context("spawn")
        pipe, child_end = context.Pipe()
        client = context.Process(
            target=client_process, args=(child_end, server.urls, codes), daemon=True
        )
        client.start()
        try:
            common.say("[fanout] warm-up")
            ask(pipe, "warm", per_url=WARM_UP)
            time.sleep(SETTLE)  # let the servers finish closing the warm-up sockets
            results["idle"] = memory(server.pids)
            common.say(f"[fanout] connecting {args.clients} clients")
            results["connect"] = ask(pipe, "connect", concurrency=CONNECT_CONCURRENCY)
            if results["connect"]["failed"]:
                raise RuntimeError(f"connections failed: {results['connect']['failures']}")
            time.sleep(SETTLE)
            results["loaded"] = memory(server.pids)
            pids = {
                "web": server.pids,
                "client": [client.pid],
                "postgres": stack.server_pids["postgres"],
            }
            results["broadcast"] = broadcast_rounds(pipe, args.rounds, args.quiet_wait, pids)
            results["after_broadcasts"] = memory(server.pids)
            sample = random.Random(3).sample(range(args.clients), min(CANCEL_SAMPLE, args.clients))
            live.quiet(args.quiet_wait, "fanout")
            common.say(f"[fanout] cancelling {len(sample)} sessions")
            with live.other_load() as load:
                cancels = ask(
                    pipe, "cancel", indices=sample, spacing=CANCEL_SPACING, timeout=RECEIPT_TIMEOUT
                )["cancels"]
            heard = [c for c in cancels if c["event"] is not None]
            results["cancel"] = {
                "sample": len(cancels),
                "ok": sum(c["status"] == 200 for c in cancels),
                "heard": len(heard),
                "closed_4410": sum(c["close_code"] == 4410 for c in cancels),
                "from_request": live.stats_ms(c["event"] - c["sent"] for c in heard),
                "from_response": live.stats_ms(c["event"] - c["answered"] for c in heard),
                "api": live.stats_ms(c["answered"] - c["sent"] for c in cancels),
                **load,
            }
            server.check_running()
        finally:
            try:
                pipe.send({"op": "stop"})
                if pipe.poll(30):
                    pipe.recv()
            except (OSError, EOFError):
                pass
            client.join(timeout=10)
            if client.is_alive():
                client.kill()
                client.join(timeout=10)
            server.stop()
    idle, loaded = results["idle"], results["loaded"]
    connected = results["connect"]["connected"]
    results["per_connection_kb"] = {
        "rss": (loaded["rss_mb"] - idle["rss_mb"]) * 1024 / connected,
        "pss": (loaded["pss_mb"] - idle["pss_mb"]) * 1024 / connected,
    }
    return results


def _ms(figures: dict) -> dict:
    return {k.removesuffix("_ms"): v for k, v in figures.items()}


def report(results: dict) -> str:
    m = results["machine"]
    target = TARGETS["broadcast_p99_ms"]
    c = results["cancel"]
    lines = [
        f"Websocket fan-out -- {m['date']}, {m['nproc']} cores, {m['cpu']}, Python {m['python']}, "
        f"code {m['code']}",
        f"{results['clients']} /ws/session/ clients over {results['processes']} uvicorn processes "
        f"(Redis channel layer), one aiohttp client process; connected in "
        f"{results['connect']['seconds']:.1f} s",
        "",
    ]
    rows = []
    for b in [results["broadcast"]]:
        p99 = b["all"]["p99_ms"]
        rows.append(
            {
                "what": "broadcast to everyone: call to receipt by every client",
                **_ms(b["all"]),
                "other": max(r["other_cores"] for r in b["rounds"]),
                "target": f"p99 < {target:.0f} ({'met' if p99 < target else 'MISSED'})",
            }
        )
        for i, r in enumerate(b["rounds"], 1):
            sends = (
                f"its channel layer sends ran {r['sends_began_ms']:.0f}-"
                f"{r['sends_done_ms']:.0f} ({r['sends_failed']} failed)"
                if r["sends_done_ms"] is not None
                else "its channel layer sends not seen"
            )
            closed = f"; sockets closed by then: {r['closed_before']}" if r["closed_before"] else ""
            rows.append(
                {
                    "what": f"  round {i}: {r['received']}/{r['recipients']} received; "
                    f"message_send returned at {r['call_ms']:.0f}, {sends}{closed}",
                    **_ms(r["stats"]),
                    "other": r["other_cores"],
                }
            )
        if b["missing"]:
            rows.append({"what": "  the clients that received it", **_ms(b["received"])})
    rows += [
        {
            "what": "cancel (API, other process) to session.cancelled, from request",
            **_ms(c["from_request"]),
            "other": c["other_cores"],
        },
        {"what": "  the same, from the cancel response", **_ms(c["from_response"])},
        {"what": "  the cancel API itself", **_ms(c["api"])},
    ]
    columns = [
        ("what (ms)", "what", ""),
        ("n", "n", "d"),
        ("p50", "p50", ".1f"),
        ("p99", "p99", ".1f"),
        ("max", "max", ".1f"),
        ("other load (cores)", "other", ".2f"),
        ("target", "target", ""),
    ]
    idle, loaded, per = results["idle"], results["loaded"], results["per_connection_kb"]
    lines += [
        common.table(rows, columns),
        "",
        f"cancel sample: {c['ok']}/{c['sample']} answered 200, {c['heard']} heard "
        f"session.cancelled, {c['closed_4410']} closed with 4410",
        f"server memory (uvicorn x{results['processes']}): idle RSS {idle['rss_mb']:.1f} MB "
        f"(PSS {idle['pss_mb']:.1f}), with {results['connect']['connected']} clients "
        f"{loaded['rss_mb']:.1f} MB (PSS {loaded['pss_mb']:.1f}), after the broadcasts "
        f"{results['after_broadcasts']['rss_mb']:.1f} MB",
        f"per connection: {per['rss']:.1f} KB RSS ({per['pss']:.1f} KB PSS)",
        "",
        "CPU per broadcast, mean over its rounds (ms, the wait for every receipt included):",
    ]
    b = results["broadcast"]
    parts = b["rounds"][0]["cpu_ms"].keys()
    mean = {k: sum(r["cpu_ms"][k] for r in b["rounds"]) / len(b["rounds"]) for k in parts}
    lines.append("  " + ", ".join(f"{k} {v:.0f}" for k, v in mean.items()))
    return "\n".join(lines)


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="broadcasts")


def main(argv: list[str]) -> int:
    return live.main(argv, doc=__doc__, run=run, report=report, arguments=arguments)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
