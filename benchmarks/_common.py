"""Helpers the benchmark scripts share: private servers, web processes, memory, figures.

Everything runs on loopback. Servers are started from this checkout's virtualenv (the
interpreter running the benchmark) with the production environment of docs/operations.md,
and every wait is bounded.
"""

# Starting this project's own programs with argument lists is this module's job.
# ruff: noqa: S603

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- machine ---------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def code_version() -> str:
    """The commit measured, marked when the work tree differs from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return f"{commit}+changes" if git("status", "--porcelain") else commit


def machine() -> dict:
    return {
        "date": date.today().isoformat(),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu_model(),
        # Which build, not only which version: an optimised one spends about a fifth less CPU.
        "python": f"{platform.python_version()} ({os.path.realpath(sys.executable)})",
        "code": code_version(),
    }


# --- private PostgreSQL and Redis (scripts/services.py) ---------------------------------


def services() -> ModuleType:
    """scripts/services.py, which is a script rather than a package."""
    spec = importlib.util.spec_from_file_location("labbook_services", ROOT / "scripts/services.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def create_database(server_url: str, name: str) -> str:
    """A new empty database on a private server; its URL."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


# --- web processes ---------------------------------------------------------------------


def production_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of docs/operations.md's web services, for this machine."""
    return os.environ | {
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": HOST,
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": database_url,
        "JOBS_IN_PROCESS": "0",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """Run manage.py with `env`; its standard output."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-4000:]}")
    return done.stdout


def listening_socket() -> socket.socket:
    """A loopback TCP socket that several server processes can accept from."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclass
class WebServer:
    """Web server processes started by a benchmark; clients spread requests over `urls`."""

    name: str
    urls: list[str]
    processes: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def check_running(self) -> None:
        for process, log in zip(self.processes, self.logs, strict=True):
            if process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {process.returncode}:\n{tail(log)}")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                # Each was started in a process group of its own: take its children too.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=STOP_TIMEOUT)


def tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _spawn(args: list[str], env: dict[str, str], log: Path, **kwargs: object) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C is for the benchmark, which stops them
            **kwargs,
        )


def start_daphne(
    processes: int, env: dict[str, str], logdir: Path, *, shared_socket: bool = False
) -> WebServer:
    """Daphne as docs/operations.md runs it (access log on standard output, to a file).

    By default each process listens on a port of its own, as behind the proxy's upstream
    list, and clients take the ports in turn. With `shared_socket`, all accept from one
    socket that this process opens and hands over with `--fd`; each then also gets a
    private port, used only to know when that process is ready.
    """
    shared = listening_socket() if shared_socket else None
    kind = "shared socket" if shared else "ports"
    server = WebServer(f"daphne x{processes} ({kind})", [])
    probes = []
    try:
        for index in range(processes):
            args = [str(BIN / "daphne"), "--proxy-headers"]
            kwargs: dict = {}
            if shared:
                port = shared.getsockname()[1]
                probe = free_port()
                args += ["--fd", str(shared.fileno()), "-e", f"tcp:port={probe}:interface={HOST}"]
                kwargs["pass_fds"] = (shared.fileno(),)
                server.urls[:] = [f"http://{HOST}:{port}"]
            else:
                port = probe = free_port()
                args += ["-b", HOST, "-p", str(port)]
                server.urls.append(f"http://{HOST}:{port}")
            probes.append(f"http://{HOST}:{probe}")
            args.append("config.asgi:application")
            log = logdir / f"daphne-{port}-{index}.log"
            env_i = env | {"PLATFORM_URL": f"http://{HOST}:{port}"}
            server.processes.append(_spawn(args, env_i, log, **kwargs))
            server.logs.append(log)
        for url in probes:
            wait_http(url + "/", server)
    except BaseException:
        server.stop()
        raise
    finally:
        if shared:
            shared.close()  # the children hold it now
    return server


# The web processes' options in production (docker-compose.yml's web services, less the
# address, which tests/deployment holds equal to these).
UVICORN_OPTIONS = (
    "--loop uvloop --http httptools --ws websockets --lifespan off "
    "--proxy-headers --forwarded-allow-ips * --no-access-log --timeout-keep-alive 75"
).split()


def start_uvicorn(processes: int, env: dict[str, str], logdir: Path) -> WebServer:
    """The production web processes: uvicorn, each on a port of its own as behind the
    proxy's upstream list (docs/operations.md), serving HTTP and websockets."""
    server = WebServer(f"uvicorn x{processes}", [])
    try:
        for _ in range(processes):
            port = free_port()
            url = f"http://{HOST}:{port}"
            args = [str(BIN / "uvicorn"), "config.asgi:application", "--host", HOST]
            args += ["--port", str(port), *UVICORN_OPTIONS]
            log = logdir / f"uvicorn-{port}.log"
            server.processes.append(_spawn(args, env | {"PLATFORM_URL": url}, log))
            server.logs.append(log)
            server.urls.append(url)
        for url in server.urls:
            wait_http(url + "/", server)
    except BaseException:
        server.stop()
        raise
    return server


def start_web(processes: int, env: dict[str, str], logdir: Path) -> WebServer:
    """The web processes as production runs them (docker-compose.yml)."""
    return start_uvicorn(processes, env, logdir)


def start_gunicorn(
    workers: int,
    env: dict[str, str],
    logdir: Path,
    *,
    threads: int = 0,
    app: str = "config.wsgi:application",
    chdir: Path = ROOT,
) -> WebServer:
    """The WSGI application (`app`, importable from `chdir`) under gunicorn (no access log,
    its default): sync workers, or with `threads` gthread workers of that many threads each
    (they keep connections alive)."""
    port = free_port()
    url = f"http://{HOST}:{port}"
    kind = f"gthread x{workers}x{threads}" if threads else f"sync x{workers}"
    server = WebServer(f"gunicorn {kind}", [url])
    log = logdir / f"gunicorn-{port}.log"
    args = [
        str(BIN / "gunicorn"),
        "--workers",
        str(workers),
        *(["--worker-class", "gthread", "--threads", str(threads)] if threads else []),
        *([] if threads else ["--worker-class", "sync"]),
        "--bind",
        f"{HOST}:{port}",
        "--log-level",
        "warning",
        "--chdir",
        str(chdir),
        app,
    ]
    server.processes.append(_spawn(args, env | {"PLATFORM_URL": url}, log))
    server.logs.append(log)
    try:
        wait_http(url + "/", server)
    except BaseException:
        server.stop()
        raise
    return server


def wait_http(url: str, server: WebServer, timeout: float = START_TIMEOUT) -> None:
    """Until `url` answers at all (any HTTP status), or the server dies, or `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.check_running()
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback only
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{server.name}: {url} did not answer within {timeout:.0f} s")


# --- memory and CPU of a process tree, from /proc ---------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after its closing one.
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(roots: Sequence[int]) -> list[int]:
    """The roots and all their descendants that are alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        if Path(f"/proc/{pid}").exists():
            found.append(pid)
            todo.extend(children.get(pid, []))
    return found


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def pss_bytes(pid: int) -> int:
    """Proportional set size: pages shared by forked workers are split between them."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


def tree_cpu_seconds(roots: Sequence[int]) -> float:
    """CPU seconds used so far by the trees under `roots`, including their children that
    have exited (a parent's cutime and cstime count the children it reaped)."""
    total = 0
    for pid in process_tree(roots):
        fields = _stat_fields(pid)
        if fields:
            total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return total / CLOCK_TICKS


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


@contextlib.contextmanager
def cpu_used(groups: dict[str, Sequence[int]]) -> Iterator[dict[str, float]]:
    """Cores used on average inside the block, by group of process trees, plus the whole
    machine's busy share ("machine", 0..1). Filled in when the block ends."""
    before = {name: tree_cpu_seconds(roots) for name, roots in groups.items()}
    busy, total = machine_cpu()
    began = time.monotonic()
    used: dict[str, float] = {}
    yield used
    elapsed = time.monotonic() - began
    for name, roots in groups.items():
        used[name] = (tree_cpu_seconds(roots) - before[name]) / elapsed
    busy_after, total_after = machine_cpu()
    used["machine"] = (busy_after - busy) / max(1, total_after - total)


class RssSampler:
    """Samples the summed RSS of process trees every `interval` seconds and keeps the peak,
    for all of `roots` and for each named part of them (`parts`). RSS counts a page shared
    by forked workers once in each of them; PSS, which splits such pages, is sampled with
    the process trees every `slow_every` samples, since reading it walks every page table.

    The sampler runs beside the server it measures, on the same cores: each sample reads
    only one small file per process (`statm`). Scanning /proc for the trees and reading
    `smaps_rollup` ten times a second cost about a quarter of a core here."""

    def __init__(
        self,
        roots: Sequence[int],
        interval: float = 0.1,
        *,
        parts: dict[str, Sequence[int]] | None = None,
        slow_every: int = 10,
    ):
        self.roots = list(roots)
        self.parts = {name: list(part) for name, part in (parts or {}).items()}
        self.interval = interval
        self.slow_every = slow_every
        self.peak = 0
        self.peak_pss = 0
        self.part_peaks = dict.fromkeys(self.parts, 0)
        self.samples = 0
        self._trees: dict[int, list[int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _refresh(self) -> None:
        wanted = {*self.roots, *(pid for part in self.parts.values() for pid in part)}
        self._trees = {root: process_tree([root]) for root in wanted}
        pids = {pid for root in self.roots for pid in self._trees[root]}
        self.peak_pss = max(self.peak_pss, sum(pss_bytes(pid) for pid in pids))

    def sample(self, *, refresh: bool = False) -> int:
        if refresh or self.samples % self.slow_every == 0:
            self._refresh()
        rss = {pid: rss_bytes(pid) for tree in self._trees.values() for pid in tree}

        def summed(roots: Sequence[int]) -> int:
            return sum(rss[pid] for pid in {pid for root in roots for pid in self._trees[root]})

        total = summed(self.roots)
        self.peak = max(self.peak, total)
        for name, part in self.parts.items():
            self.part_peaks[name] = max(self.part_peaks[name], summed(part))
        self.samples += 1
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample(refresh=True)  # the last sample reads PSS too

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20

    @property
    def peak_pss_mb(self) -> float:
        return self.peak_pss / 2**20

    def part_peak_mb(self, name: str) -> float:
        return self.part_peaks[name] / 2**20


def wait_for_quiet(max_seconds: float, *, threshold: float = 0.25, window: float = 2.0) -> float:
    """On a shared machine: wait, at most `max_seconds`, until other programs use less than
    `threshold` cores over `window` seconds. Returns the last figure measured."""
    nproc = len(os.sched_getaffinity(0))
    deadline = time.monotonic() + max_seconds
    while True:
        busy, total = machine_cpu()
        time.sleep(window)
        busy_after, total_after = machine_cpu()
        cores = nproc * (busy_after - busy) / max(1, total_after - total)
        if cores < threshold or time.monotonic() >= deadline:
            return cores


# --- figures ---------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile `q` (0-100) of `values`; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def run_bounded(
    step: Callable[[int], None], *, threads: int, count: int, seconds: float
) -> tuple[int, float]:
    """Call `step(n)` for n = 0, 1, ... from `threads` threads until `count` calls have been
    handed out or `seconds` have passed; (calls completed, elapsed seconds)."""
    lock = threading.Lock()
    issued = 0
    done = 0
    errors: list[BaseException] = []
    deadline = time.monotonic() + seconds

    def worker() -> None:
        nonlocal issued, done
        while not errors and time.monotonic() < deadline:
            with lock:
                if issued >= count:
                    return
                n = issued
                issued += 1
            try:
                step(n)
            except BaseException as error:  # stop everyone, report the first
                errors.append(error)
                return
            with lock:
                done += 1

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return done, elapsed


Column = tuple[str, str, str]  # header, key, format spec


def format_value(value: object, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if spec and isinstance(value, int | float) and not isinstance(value, bool):
        return format(value, spec)
    return str(value)


def table(rows: Sequence[dict], columns: Sequence[Column]) -> str:
    """A Markdown table (readable as it is in a terminal)."""
    cells = [[format_value(row.get(key), spec) for _, key, spec in columns] for row in rows]
    headers = [header for header, _, _ in columns]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), rule, *(line(c) for c in cells)])


def save(results: object) -> None:
    """With BENCH_JSON set (scripts/bench sets it), also write the results there as JSON."""
    path = os.environ.get("BENCH_JSON")
    if path:
        Path(path).write_text(json.dumps(results, indent=2, default=str))


def emit(results: dict, *, as_json: bool, text: Callable[[dict], str]) -> None:
    """Print the results as JSON or as the script's text report."""
    save(results)
    if as_json:
        print(json.dumps(results, indent=2, default=str))
    else:
        print(text(results))


def say(message: str) -> None:
    """Progress, on standard error so that --json output stays clean."""
    print(message, file=sys.stderr, flush=True)
