#!/usr/bin/env python3
"""Private, throwaway PostgreSQL and Redis servers on loopback, for tests and development.

Each server lives in a folder of the caller's, listens on a free 127.0.0.1 port and is
gone when its stop function runs (also registered with atexit). Standard library only, so
the system python3 can run it before the virtualenv exists.

    python3 scripts/services.py env      # start both, print export lines, run until Ctrl-C
    python3 scripts/services.py ensure   # install the Debian packages the tests need
"""

# Running fixed local programs with argument lists is this module's job.
# ruff: noqa: S603

from __future__ import annotations

import atexit
import glob
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

StopFn = Callable[[], None]

APT_PACKAGES = ["postgresql", "redis-server", "chromium", "docker-compose"]
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
PG_SUPERUSER = "labbook"


class ServiceError(RuntimeError):
    pass


# --- packages ------------------------------------------------------------------------


def pg_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin that has initdb."""

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.split("/")[-3]))

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    return Path(found[-1]).parent if found else None


def missing_packages() -> list[str]:
    present = {
        "postgresql": pg_bindir() is not None,
        "redis-server": shutil.which("redis-server") is not None,
        "chromium": Path("/usr/bin/chromium").exists(),
        "docker-compose": shutil.which("docker-compose") is not None,
    }
    return [name for name in APT_PACKAGES if not present[name]]


def ensure_packages() -> None:
    """Install the servers and tools the test suite runs, or say what to install."""
    missing = missing_packages()
    if not missing:
        return
    if os.geteuid() != 0:
        print(
            f"Missing: {', '.join(missing)}. Install them with:\n"
            f"    sudo apt-get update && sudo apt-get install -y {' '.join(APT_PACKAGES)}",
            file=sys.stderr,
        )
        sys.exit(1)
    print(f"Installing {', '.join(missing)} with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", *APT_PACKAGES]):
        subprocess.run(command, check=True, env=env, stdin=subprocess.DEVNULL)
    still = missing_packages()
    if still:
        raise ServiceError(f"apt-get finished but these are still missing: {', '.join(still)}")


# --- helpers -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_user(command: list[str], user: str | None) -> list[str]:
    """Run as `user` (root only); the server also dies with the process that started it."""
    if not shutil.which("setpriv"):
        if user:
            return ["runuser", "-u", user, "--", *command]
        return command
    prefix = ["setpriv"]
    if user:
        prefix += [f"--reuid={user}", f"--regid={user}", "--init-groups"]
    return [*prefix, "--pdeathsig", "INT", "--", *command]


def _wait_until(ready: Callable[[], bool], process: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceError(f"{what} exited with {process.returncode}:\n{_tail(log)}")
        if ready():
            return
        time.sleep(0.05)
    raise ServiceError(f"{what} not ready after {READY_TIMEOUT:.0f}s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stopper(process: subprocess.Popen, sig: int) -> StopFn:
    def stop() -> None:
        if process.poll() is not None:
            return
        for signum, wait in ((sig, STOP_TIMEOUT), (signal.SIGKILL, STOP_TIMEOUT)):
            try:
                process.send_signal(signum)
                process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                return

    atexit.register(stop)
    return stop


# --- PostgreSQL ------------------------------------------------------------------------


def start_postgres(tmpdir: str | os.PathLike, *, durable: bool = False) -> tuple[str, StopFn]:
    """Start a private PostgreSQL server; return its superuser URL and a stop function.

    For the tests it is a throwaway server that skips flushing to disk. `durable=True`
    keeps PostgreSQL's own settings (every commit flushed), as production runs it: the
    benchmarks measure with those."""
    bindir = pg_bindir()
    if bindir is None:
        raise ServiceError("PostgreSQL is not installed (apt-get install postgresql)")
    root = Path(tmpdir) / "postgres"
    data, sockets, log = root / "data", root / "run", root / "postgres.log"
    sockets.mkdir(parents=True)
    user = None
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root: hand its folder to the postgres system user,
        # which must be able to pass through the caller's folder to reach it.
        user = "postgres"
        os.chmod(tmpdir, 0o711)  # noqa: S103 - search only, no listing
        closed = [p for p in Path(tmpdir).resolve().parents if not os.stat(p).st_mode & 0o001]
        if closed:
            raise ServiceError(f"{closed[0]} is closed to the postgres user: use another TMPDIR")
        shutil.chown(root, user, user)
        shutil.chown(sockets, user, user)
    password = secrets.token_hex(16)
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n")
    if user:
        shutil.chown(pwfile, user, user)
    initdb = [
        str(bindir / "initdb"),
        f"--pgdata={data}",
        f"--username={PG_SUPERUSER}",
        f"--pwfile={pwfile}",
        "--auth-host=scram-sha-256",
        "--auth-local=trust",
        "--encoding=UTF8",
        "--locale=C.UTF-8",
        "--no-sync",
        "--no-instructions",
    ]
    with log.open("ab") as out:
        done = subprocess.run(_as_user(initdb, user), cwd=root, stdout=out, stderr=out)
    pwfile.unlink()
    if done.returncode != 0:
        raise ServiceError(f"initdb failed with {done.returncode}:\n{_tail(log)}")

    port = free_port()
    server = [
        str(bindir / "postgres"),
        "-D",
        str(data),
        "-p",
        str(port),
        "-k",
        str(sockets),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "max_connections=200",
    ]
    if not durable:  # a throwaway server: durability is worth nothing, speed is
        server += ["-c", "fsync=off", "-c", "synchronous_commit=off"]
        server += ["-c", "full_page_writes=off"]
    with log.open("ab") as out:
        process = subprocess.Popen(
            _as_user(server, user), cwd=root, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
    stop = _stopper(process, signal.SIGINT)  # SIGINT: fast shutdown

    def ready() -> bool:
        probe = [
            str(bindir / "pg_isready"),
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            PG_SUPERUSER,
            "-d",
            "postgres",
            "-t",
            "1",
        ]
        return subprocess.run(probe, stdin=subprocess.DEVNULL).returncode == 0

    try:
        _wait_until(ready, process, "PostgreSQL", log)
    except BaseException:
        stop()
        raise
    return f"postgres://{PG_SUPERUSER}:{password}@127.0.0.1:{port}/postgres", stop


# --- Redis -----------------------------------------------------------------------------


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(tmpdir: str | os.PathLike, port: int | None = None) -> tuple[str, StopFn]:
    """Start a private Redis server without persistence; return its URL and a stop function.

    Give the port of a stopped one to bring it back where its clients expect it."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceError("Redis is not installed (apt-get install redis-server)")
    root = Path(tmpdir) / "redis"
    root.mkdir(parents=True, exist_ok=True)
    log = root / "redis.log"
    port = port or free_port()
    command = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(root),
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--logfile",
        "",
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(
            _as_user(command, None), cwd=root, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
    stop = _stopper(process, signal.SIGTERM)
    try:
        _wait_until(lambda: redis_ping(port), process, "Redis", log)
    except BaseException:
        stop()
        raise
    return f"redis://127.0.0.1:{port}/0", stop


# --- command line ----------------------------------------------------------------------


def exit_on_signals() -> None:
    """Turn SIGTERM/SIGINT/SIGHUP into SystemExit, so `finally` and atexit run."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, handler)


def make_tmpdir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _env() -> int:
    exit_on_signals()
    tmpdir = make_tmpdir("labbook-services-")
    pg_url, stop_pg = start_postgres(tmpdir)
    redis_url, stop_redis = start_redis(tmpdir)
    # atexit runs last-registered first: servers stop before their folder is removed.
    try:
        print(f"export DATABASE_URL={pg_url}")
        print(f"export REDIS_URL={redis_url}")
        print(f"export TEST_POSTGRES_URL={pg_url}")
        print(f"export TEST_REDIS_URL={redis_url}")
        print("# Paste the lines above into another shell. Ctrl-C stops the servers.", flush=True)
        while True:
            signal.pause()
    finally:
        stop_redis()
        stop_pg()


def main(argv: list[str]) -> int:
    commands = {"env": _env, "ensure": lambda: ensure_packages() or 0}
    if len(argv) != 1 or argv[0] not in commands:
        print(f"usage: {Path(sys.argv[0]).name} env|ensure", file=sys.stderr)
        return 2
    return commands[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
