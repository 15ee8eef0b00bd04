"""Login sessions remembered by the web process, forgotten as soon as PostgreSQL says they changed.

Every authenticated request reads its login session and user (one statement,
`web.login_sessions`). On the booking path that read was about a tenth of the CPU a booking
costs the web process and PostgreSQL together (docs/benchmarks.md). On PostgreSQL a web
process remembers the rows it read, for `LOGIN_CACHE_SECONDS` at most, and forgets them on
PostgreSQL's word:

- Triggers (migration web 0003) send a notification on channel `CHANNEL` whenever a login
  session or a user row is updated or deleted, from any process or tool (logout, an admin
  deactivating someone, a new password, `clearsessions`, raw SQL), naming the user's id;
  a TRUNCATE names everyone (`*`). The notification leaves at the commit, so nothing that
  is rolled back makes a process forget anything.
- Each web process keeps one connection of its own listening (a thread, started at the
  first session read). It forgets the named user's sessions when told.
- The process remembers nothing while it is not listening. Its heartbeat is a notification
  of its own on the channel, once every `HEARTBEAT` seconds: it counts as listening only
  while the last one it heard back was sent less than `DEAF_AFTER` seconds ago. So before
  its first heartbeat comes back, once the connection broke (everything it remembered is
  forgotten then), or behind a pooler that does not keep a session's LISTEN, it reads
  every time; no notification is missed while a remembered row is used.
- A row read before a notification arrived, and put in after it, could be the older state:
  every notification moves `epoch` on, and a row read at an earlier epoch is not
  remembered.
- Rows read inside a transaction (`atomic`) are not remembered: that transaction might
  not commit.

What remains is the delay of the notification itself: a request that starts in another
process in the milliseconds between a logout's commit and its notification's arrival is
served as a request that read the session just before the commit would have been.
Writes made by this process forget their rows at once as well (`SessionStore`).

What is remembered is the session's stored text (`web.login_sessions` decodes each text
once per process), its expiry (checked against each request's clock) and the user's column
values (each request builds its own user object from them), keyed by the session key, in
memory only and never logged.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import psycopg
from django.conf import settings
from django.db import connections

log = logging.getLogger(__name__)

CHANNEL = "web_login_changed"
EVERYONE = "*"
BEAT = "beat "  # a listener's heartbeat: "beat " and a token of its own; others ignore it
HEARTBEAT = 1.0  # seconds between the listener's checks that its connection still answers
DEAF_AFTER = 5.0  # seconds after the last answer at which the process stops remembering
WAKE = 0.2  # seconds the listener waits for notifications before it looks up
RETRY = 1.0  # seconds before the listener connects again after a failure
SIZE = 2000  # sessions remembered at most per process; the oldest go first


@dataclass(frozen=True, slots=True)
class Remembered:
    session_data: str
    expire_date: datetime
    user_id: int
    user_values: tuple
    stored_at: float


class LoginCache:
    """The remembered login sessions of one database alias, in one process."""

    def __init__(
        self,
        alias: str,
        seconds: float,
        size: int = SIZE,
        clock: Callable[[], float] = time.monotonic,
        connect: Callable[[], psycopg.Connection] | None = None,
    ):
        self.alias = alias
        self.connect = connect or self._connect
        self.seconds = seconds
        self.size = size
        self.clock = clock
        self.epoch = 0
        self._rows: OrderedDict[str, Remembered] = OrderedDict()
        self._lock = threading.Lock()
        self._alive_until = 0.0  # listening, and heard from the server, until then
        self.listener_pid: int | None = None  # the listening connection's server process
        self.beats_sent = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    # --- requests ----------------------------------------------------------------------

    @property
    def listening(self) -> bool:
        return self.clock() < self._alive_until

    def get(self, session_key: str, now: datetime) -> Remembered | None:
        if not self.listening:
            return None
        with self._lock:
            row = self._rows.get(session_key)
            if row is None:
                return None
            if row.expire_date <= now or self.clock() - row.stored_at > self.seconds:
                del self._rows[session_key]
                return None
            return row

    def put(self, session_key: str, row: Remembered, epoch: int) -> bool:
        """Remember a row read at `epoch` (read `epoch` before the statement), unless
        anything changed since or the process is not listening."""
        with self._lock:
            if epoch != self.epoch or not self.listening:
                return False
            self._rows[session_key] = row
            self._rows.move_to_end(session_key)
            while len(self._rows) > self.size:
                self._rows.popitem(last=False)
            return True

    def forget_session(self, session_key: str | None) -> None:
        with self._lock:
            self.epoch += 1
            self._rows.pop(session_key, None)

    # --- notifications -------------------------------------------------------------------

    def forget(self, payload: str) -> None:
        """What a notification says: one user's id, or EVERYONE (a heartbeat says nothing)."""
        if payload.startswith(BEAT):
            return
        with self._lock:
            self.epoch += 1
            if payload == EVERYONE:
                self._rows.clear()
                return
            try:
                user_id = int(payload)
            except ValueError:
                log.warning("login cache: unreadable notification; forgetting everyone")
                self._rows.clear()
                return
            for key in [key for key, row in self._rows.items() if row.user_id == user_id]:
                del self._rows[key]

    def _deaf(self) -> None:
        with self._lock:
            self._alive_until = 0.0
            self.epoch += 1
            self._rows.clear()

    def _heard(self, sent_at: float) -> None:
        """The heartbeat sent at `sent_at` came back."""
        with self._lock:
            if not self.listening:  # deaf until now: what it remembers may be stale
                self.epoch += 1
                self._rows.clear()
            self._alive_until = sent_at + DEAF_AFTER

    def start(self) -> None:
        """Start listening (once per process; a forked child starts its own)."""
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's thread did not come along
                self._pid, self._thread, self._alive_until = os.getpid(), None, 0.0
                self._rows.clear()
                self._stop = threading.Event()
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._listen, name=f"login-cache-{self.alias}", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._deaf()

    def _connect(self) -> psycopg.Connection:
        params = connections[self.alias].get_connection_params()
        params["autocommit"] = True
        params.setdefault("connect_timeout", 5)
        return psycopg.Connection.connect(**params)

    def _listen(self) -> None:
        failing = False  # said so already: one warning per outage, not one per retry
        while not self._stop.is_set():
            try:
                with self.connect() as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listener_pid = conn.info.backend_pid
                    mine = f"{BEAT}{conn.info.backend_pid} {secrets.token_hex(8)} "
                    token, sent_at = None, -HEARTBEAT  # the heartbeat on its way, if any
                    while not self._stop.is_set():
                        now = self.clock()
                        # The next heartbeat once the last came back (HEARTBEAT after it was
                        # sent), or in place of one lost (DEAF_AFTER after).
                        if now - sent_at >= (HEARTBEAT if token is None else DEAF_AFTER):
                            self.beats_sent += 1
                            token, sent_at = f"{mine}{self.beats_sent}", now
                            conn.execute("SELECT pg_notify(%s, %s)", [CHANNEL, token])
                        # Short waits, so that stop() is prompt.
                        for note in conn.notifies(timeout=WAKE):
                            if note.payload != token:
                                self.forget(note.payload)
                                continue
                            # Notifications arrive in the order their transactions
                            # committed: every change committed before sent_at has come.
                            self._heard(sent_at)
                            token = None
                            if failing:
                                log.warning("login cache: listening again")
                                failing = False
            except Exception as error:  # a broken connection, the server away: retry
                if not failing:
                    log.warning(
                        "login cache: not listening (%s); sessions are read every time",
                        type(error).__name__,
                    )
                failing = True
            finally:
                self._deaf()
            self._stop.wait(RETRY)


_caches: dict[str, LoginCache] = {}
_caches_lock = threading.Lock()


def login_cache(alias: str) -> LoginCache | None:
    """The alias's cache, listening or starting to; None where there is none (SQLite, or
    LOGIN_CACHE_SECONDS = 0)."""
    seconds = settings.LOGIN_CACHE_SECONDS
    if not seconds or connections[alias].vendor != "postgresql":
        return None
    cache = _caches.get(alias)
    if cache is None:
        with _caches_lock:
            cache = _caches.get(alias)
            if cache is None:
                cache = _caches[alias] = LoginCache(alias, seconds)
    cache.start()
    return cache


def remembered_in(alias: str) -> LoginCache | None:
    """The alias's cache if this process has one (to forget in it), without starting one."""
    return _caches.get(alias)


def forget_user(sender: type, instance: object, using: str, **kwargs: object) -> None:
    """post_save and post_delete of the user model (web.apps)."""
    memory = remembered_in(using)
    if memory is not None and instance.pk is not None:
        memory.forget(str(instance.pk))


def login_caches_stop() -> None:
    """Stop every listener and forget everything (tests; a process shutting down)."""
    with _caches_lock:
        caches = list(_caches.values())
        _caches.clear()
    for cache in caches:
        cache.stop()
