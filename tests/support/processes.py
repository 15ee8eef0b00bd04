"""Real server processes for tests: start, wait until ready, stop, restart.

A process counts as ready when it prints an agreed line (stdout and stderr are read as one
stream); every wait has a timeout and nothing sleeps for a fixed time. Whatever a process
printed is kept, so a failure can show it. Processes still running when the test run ends
are stopped.
"""

# These helpers run this project's own programs with argument lists.
# ruff: noqa: S603

import atexit
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[2]
LOCALHOST = "127.0.0.1"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

T = TypeVar("T")


def free_port(host: str = LOCALHOST) -> int:
    """A port nobody listens on right now (the OS's pick; free until someone takes it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def wait_until(
    check: Callable[[], T], *, timeout: float, every: float = 0.02, what: str = "condition"
) -> T:
    """Poll `check` until it returns something truthy; its value, or TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not reached within {timeout} s")
        time.sleep(every)


def port_accepts(port: int, host: str = LOCALHOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def child_env(**extra: str) -> dict[str, str]:
    """The test run's environment, unbuffered output, plus `extra`."""
    return os.environ | {"PYTHONUNBUFFERED": "1"} | extra


class ServerProcess:
    """A child process whose output is collected line by line as it comes."""

    _running: set["ServerProcess"] = set()

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None, name: str = ""):
        self.args = args
        self.env = env if env is not None else child_env()
        self.name = name or Path(args[0]).name
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._process: subprocess.Popen[str] | None = None
        self._collector: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> int | None:
        return self._process.poll() if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def output(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def start(self, *, ready: str | re.Pattern[str], timeout: float = START_TIMEOUT) -> re.Match:
        """Start it; return the match of the first line that says it is ready."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        with self._changed:
            seen = len(self.lines)
        self._process = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,  # a Ctrl-C in the terminal is for pytest, not for it
        )
        ServerProcess._running.add(self)
        self._collector = threading.Thread(target=self._collect, args=(self._process,), daemon=True)
        self._collector.start()
        try:
            return self.wait_for_line(ready, timeout=timeout, after=seen)
        except (TimeoutError, RuntimeError):
            self.stop()
            raise

    def _collect(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        with process.stdout:
            for line in process.stdout:
                with self._changed:
                    self.lines.append(line)
                    self._changed.notify_all()
        process.wait()
        with self._changed:
            self._changed.notify_all()

    def wait_for_line(
        self, pattern: str | re.Pattern[str], *, timeout: float, after: int = 0
    ) -> re.Match:
        """The first line from index `after` on that matches; fails if the process exits."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        checked = after
        with self._changed:
            while True:
                for line in self.lines[checked:]:
                    match = regex.search(line)
                    if match:
                        return match
                checked = len(self.lines)
                if self._process is None or self._process.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited ({self.returncode}) before printing "
                        f"{regex.pattern!r}:\n{''.join(self.lines)[-4000:]}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"{self.name}: no line matching {regex.pattern!r} within {timeout} s:\n"
                        f"{''.join(self.lines)[-4000:]}"
                    )
                # Woken by each new line and by the exit; the timeout only bounds a hang.
                self._changed.wait(min(remaining, 0.5))

    def signal(self, signum: int) -> None:
        if self.running:
            assert self._process is not None
            self._process.send_signal(signum)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        assert self._process is not None
        code = self._process.wait(timeout=timeout)
        self._finished(timeout)
        return code

    def _finished(self, timeout: float) -> None:
        """Once it has exited: every line it printed has been read when this returns."""
        ServerProcess._running.discard(self)
        if self._collector is not None:
            self._collector.join(timeout)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout`; its exit status."""
        if self._process is None:
            return None
        if self.running:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=timeout)
        self._finished(timeout)
        return self._process.returncode


@atexit.register
def _stop_leftovers() -> None:
    for process in list(ServerProcess._running):
        process.stop(timeout=2)


# --- the practable test relay -------------------------------------------------------------

RELAY_READY = re.compile(r"^READY (\d+)$")


class TestRelay:
    """A running `tests.support.practable_relay` process on a fixed port."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, *, port: int, secret: str, audience: str, host: str = LOCALHOST):
        self.host = host
        self.port = port
        self.secret = secret
        self.audience = audience
        self.url = f"http://{host}:{port}"
        self.process = ServerProcess(
            [
                sys.executable,
                "-m",
                "tests.support.practable_relay",
                "--host",
                host,
                "--port",
                str(port),
                "--audience",
                audience,
                "--secret-env",
                "PRACTABLE_RELAY_SECRET",
            ],
            env=child_env(PRACTABLE_RELAY_SECRET=secret),
            name=f"practable relay :{port}",
        )

    def start(self, timeout: float = START_TIMEOUT) -> "TestRelay":
        self.process.start(ready=RELAY_READY, timeout=timeout)
        return self

    def stop(self) -> int | None:
        return self.process.stop()

    def restart(self, timeout: float = START_TIMEOUT) -> "TestRelay":
        """Stop and start again on the same port: everything in its memory is gone."""
        self.stop()
        return self.start(timeout)

    def __enter__(self) -> "TestRelay":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_test_relay(
    port: int | None = None,
    *,
    secret: str,
    audience: str | None = None,
    timeout: float = START_TIMEOUT,
) -> TestRelay:
    """A practable test relay, listening once this returns. Its audience defaults to its
    access URL (http://127.0.0.1:PORT), as a platform's Relay row would name it."""
    port = port or free_port()
    relay = TestRelay(port=port, secret=secret, audience=audience or f"http://{LOCALHOST}:{port}")
    return relay.start(timeout)
