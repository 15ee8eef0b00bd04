"""The relay agent: keeps a practable relay's deny list in step with the platform's feed.

It runs on the relay's host. Each cycle it reads the revocation feed from its cursor and
forwards the entries whose `exp` is still ahead to the relay's `POST /bids/deny`. A practable
relay forgets its deny list when it restarts, so the agent asks for the whole snapshot (and
forwards all of it) when it starts, every `resend_every` seconds, and as soon as the relay
answers again after a failed call. A deny that fails is tried again next cycle; the cursor
moves only past entries that reached the relay (or no longer need to).

Credentials are read at each use, so a rotated token or secret needs no restart, and they
never appear in a log line.
"""

import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlencode, urlsplit

from sessions_app.tokens import relay_admin_token_for

log = logging.getLogger(__name__)

FEED_PATH = "/api/v1/relay/revocations/"


class AgentError(Exception):
    """A problem of configuration (a missing credential, a bad URL); never holds a secret."""


@dataclass(frozen=True)
class Credential:
    """Where a credential is read from, at each use: a file or an environment variable."""

    what: str
    file: str = ""
    env: str = ""

    def read(self) -> str:
        if self.file:
            try:
                value = Path(self.file).read_text().strip()
            except OSError as error:
                raise AgentError(f"{self.what}: cannot read {self.file}") from error
        else:
            value = os.environ.get(self.env, "").strip()
        if not value:
            raise AgentError(f"{self.what}: empty ({self.file or '$' + self.env})")
        return value


def check_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise AgentError(f"{what}: not an http(s) URL: {url}")
    return url.rstrip("/")


@dataclass(frozen=True)
class AgentConfig:
    feed_url: str  # the platform's base URL
    api_token: Credential
    relay_url: str  # the relay's access root
    relay_secret: Credential
    audience: str
    issuer: str
    interval: float = 5.0
    resend_every: float = 60.0
    timeout: float = 5.0


@dataclass
class CycleReport:
    snapshot: bool = False
    not_modified: bool = False
    received: int = 0
    expired: int = 0
    forwarded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed and not self.error

    def summary(self) -> str:
        if self.error:
            return f"error: {self.error}"
        if self.not_modified:
            return "no news"
        kind = "snapshot" if self.snapshot else "update"
        text = f"{kind}: {self.received} entries, forwarded {len(self.forwarded)}"
        if self.forwarded:
            text += f" ({', '.join(self.forwarded)})"
        if self.expired:
            text += f", {self.expired} already expired"
        if self.failed:
            text += f", NOT forwarded {len(self.failed)} ({', '.join(self.failed)})"
        return text


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


class Unreachable(Exception):
    pass


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect would carry our Authorization header to wherever it points.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def http_call(method: str, url: str, *, headers: dict[str, str], timeout: float) -> Answer:
    data = b"" if method == "POST" else None
    request = urllib.request.Request(url, method=method, headers=headers, data=data)  # noqa: S310
    try:
        with _opener.open(request, timeout=timeout) as response:
            return Answer(response.status, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Answer(error.code, error.read())
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise Unreachable(f"{urlsplit(url).netloc}: {reason}") from error


class Stopper(Protocol):
    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class RelayAgent:
    def __init__(
        self,
        config: AgentConfig,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.clock = clock
        self.monotonic = monotonic
        self.cursor: int | None = None
        self.need_snapshot = True  # the relay may have restarted while we were away
        self.relay_failed = False
        self.next_snapshot_at = 0.0

    # --- one cycle ------------------------------------------------------------------------

    def cycle(self) -> CycleReport:
        report = CycleReport()
        try:
            silence = self._relay_silence() if self.relay_failed else ""
            if silence:
                report.error = f"the relay still does not answer ({silence})"
            else:
                self._poll(report)
        except (AgentError, Unreachable) as error:
            report.error = str(error)
        self._log(report)
        return report

    def _relay_silence(self) -> str:
        """After a failed call: why the relay is still not back ("" once it answers; then it
        may have restarted and forgotten everything, so the next poll is a snapshot)."""
        try:
            answer = self._relay("GET", "/bids/deny")
        except Unreachable as error:
            return str(error)
        if answer.status != 200:
            return f"HTTP {answer.status}{_code(answer)}"
        log.info("the relay answers again: sending the whole snapshot")
        self.relay_failed = False
        self.need_snapshot = True
        return ""

    def _poll(self, report: CycleReport) -> None:
        report.snapshot = (
            self.need_snapshot or self.cursor is None or self.monotonic() >= self.next_snapshot_at
        )
        headers = {"Authorization": f"Bearer {self.config.api_token.read()}"}
        url = f"{self.config.feed_url}{FEED_PATH}"
        if not report.snapshot:
            url += f"?{urlencode({'since': self.cursor})}"
            headers["If-None-Match"] = f'"{self.cursor}"'
        answer = http_call("GET", url, headers=headers, timeout=self.config.timeout)
        if answer.status == 304 and not report.snapshot:
            report.not_modified = True
            return
        if answer.status == 400 and not report.snapshot:
            # Our cursor means nothing to the feed (its data was reset?): start over.
            self.need_snapshot = True
            report.error = "the feed refused our cursor; asking for a snapshot next"
            return
        if answer.status != 200:
            report.error = f"feed answered HTTP {answer.status}{_code(answer)}"
            return
        cursor, snapshot, entries = _parse_feed(answer.body)
        report.snapshot = report.snapshot or snapshot
        report.received = len(entries)
        held_back = self._forward(entries, report)
        if held_back is None:
            self.cursor = cursor
            if report.snapshot:
                self.need_snapshot = False
                self.next_snapshot_at = self.monotonic() + self.config.resend_every
        elif not report.snapshot:
            self.cursor = max(self.cursor or 0, held_back - 1)

    def _forward(self, entries: list[dict], report: CycleReport) -> int | None:
        """Deny each booking whose entries are still live; the lowest seq not forwarded."""
        now = self.clock()
        bookings: dict[str, tuple[int, int]] = {}  # booking id: (latest exp, lowest seq)
        for entry in sorted(entries, key=lambda e: e["seq"]):
            if entry["exp"] <= now:
                report.expired += 1
                continue
            exp, seq = bookings.get(entry["booking_id"], (0, entry["seq"]))
            bookings[entry["booking_id"]] = (max(exp, entry["exp"]), seq)
        held_back: int | None = None
        for booking_id, (exp, seq) in bookings.items():
            if held_back is None and self._deny(booking_id, exp):
                report.forwarded.append(booking_id)
                continue
            # After one failure the rest wait too: the relay is probably down.
            report.failed.append(booking_id)
            held_back = seq if held_back is None else min(held_back, seq)
        return held_back

    def _deny(self, booking_id: str, exp: int) -> bool:
        query = urlencode({"bid": booking_id, "exp": int(exp)})
        try:
            answer = self._relay("POST", f"/bids/deny?{query}")
        except Unreachable as error:
            log.warning("deny of booking %s not delivered: %s", booking_id, error)
            self.relay_failed = True
            return False
        if 200 <= answer.status < 300:
            return True
        log.warning(
            "deny of booking %s refused by the relay: HTTP %d%s",
            booking_id,
            answer.status,
            _code(answer),
        )
        self.relay_failed = True
        return False

    def _relay(self, method: str, path: str) -> Answer:
        token = relay_admin_token_for(
            secret=self.config.relay_secret.read().encode(),
            audience=self.config.audience,
            issuer=self.config.issuer,
            now=datetime.fromtimestamp(self.clock(), tz=UTC),
        )
        # The practable relay wants the token raw, without "Bearer ".
        return http_call(
            method,
            f"{self.config.relay_url}{path}",
            headers={"Authorization": token},
            timeout=self.config.timeout,
        )

    def _log(self, report: CycleReport) -> None:
        if report.error or report.failed:
            log.warning("%s", report.summary())
        elif report.snapshot or report.forwarded:
            log.info("%s", report.summary())
        else:
            log.debug("%s", report.summary())

    # --- the loop -------------------------------------------------------------------------

    def run(self, stop: Stopper) -> None:
        """Cycle every `interval` seconds until `stop` is set; the cycle under way finishes."""
        log.info(
            "relay agent started: feed %s, relay %s, every %s s, snapshot every %s s",
            self.config.feed_url,
            self.config.relay_url,
            self.config.interval,
            self.config.resend_every,
        )
        while not stop.is_set():
            self.cycle()
            stop.wait(self.config.interval)
        log.info("relay agent stopped")


def _code(answer: Answer) -> str:
    """The error code from a JSON error body, if any (never the whole body: keep logs small)."""
    try:
        code = json.loads(answer.body).get("code")
    except (ValueError, AttributeError):
        return ""
    return f" ({code})" if code else ""


def _parse_feed(body: bytes) -> tuple[int, bool, list[dict]]:
    try:
        data = json.loads(body)
        cursor, snapshot, entries = data["cursor"], data["snapshot"], data["entries"]
        valid = (
            isinstance(cursor, int)
            and isinstance(snapshot, bool)
            and isinstance(entries, list)
            and all(
                isinstance(e.get("seq"), int)
                and isinstance(e.get("booking_id"), str)
                and e["booking_id"]
                and isinstance(e.get("exp"), int)
                for e in entries
            )
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        valid = False
    if not valid:
        raise AgentError("the feed's answer is not a revocation list")
    return cursor, snapshot, entries
