"""Django's PostgreSQL backend, with a connection-pool check that is cheap and fit for a
database restart.

Django has the pool check each connection before lending it, with a round trip to the
server. Here a connection with nothing to read is lent as it is: an idle connection only
has something to read when the server said something on its own, and a server that stops
or restarts always does (it sends the error that ends the session, then closes the
socket). Anything to read, or a connection psycopg already knows is broken, gets the
round trip. That saves a round trip per request on the hot paths.

Timestamps are read by psycopg's own loader (compiled, with `psycopg[binary]`). Django
registers a loader of its own, a Python subclass of psycopg's Python loader that relabels
each value with the database's time zone; with `USE_TZ` and no `TIME_ZONE` for the database
that zone is UTC, the connection's time zone is UTC too (Django sets it), and psycopg's
loader already answers in it (`datetime.timezone.utc`): the same values, without parsing
each one in Python. Under load that parsing was a fifth to a third of a web process's
interpreter time on the booking path (docs/benchmarks.md).

psycopg_pool, when that check fails, tries the next connection after a growing pause (1, 2,
4, 8 s...). After a PostgreSQL restart every idle connection is dead, so with a few of them
a request waited past the pool's timeout (a 503) although the server had long been back.
Here the first failed check checks every idle connection of the pool at once: the dead ones
are replaced in the background, and the request gets a fresh connection after the first
pause.

A rollback keeps the connection's prepared statements. psycopg's own `rollback()` forgets
them all (and sends `DEALLOCATE ALL`, a round trip) in case the transaction dropped or
altered what they use; each statement is then parsed and planned again on its next five runs
before it is prepared once more. The web processes and workers run no DDL (migrations run
in a process of their own), and PostgreSQL keeps a named statement through a rollback. Every
refused booking ends its transaction with a rollback: in a race for one experiment, where
nearly every request is refused, PostgreSQL spent 2.6-2.8 ms of CPU per request instead of
0.9 ms, planning the same statements again (docs/benchmarks.md). The rollback runs the
command as psycopg's `rollback()` does, through its generator for commands (a private one,
psycopg being pinned; tests/test_postgres_pool.py fails if an upgrade changes it).

The web processes' request threads keep their connection between requests. Django takes a
connection from the pool at a request's first query and gives it back when the request
ends; on the booking path that took about 0.4 ms of a booking POST's 5.2 ms (the
connection's parameters worked out again, the pool's locks, the connection's state set
again; docs/benchmarks.md, eleventh look). The threads are few and fixed (`WEB_THREADS`
per process), so keeping one connection each cannot leak connections as threads made per
request would. A kept connection is checked at the next request as the pool checks one
before lending it, returned when a request leaves a transaction open on it, and handed back
to the pool after `KEEP_SECONDS`.
"""

import select
import time
from datetime import UTC

from django.conf import settings
from django.db.backends.postgresql import base
from django.db.backends.utils import debug_transaction
from psycopg import adapt, adapters, pq
from psycopg.postgres import types
from psycopg_pool import ConnectionPool

TIMESTAMPTZ_OID = types["timestamptz"].oid


_PSYCOPG_TIMESTAMPTZ = adapters.get_loader(TIMESTAMPTZ_OID, pq.Format.TEXT)


class UtcTimestamptzLoader(adapt.Loader):
    """psycopg's loader for `timestamptz` (a compiled class that cannot be subclassed), for
    connections whose time zone is UTC. `timezone` is what Django compares with the
    database's before each cursor (it registers its own loader when they differ)."""

    timezone = UTC

    def __init__(self, oid: int, context: object = None) -> None:
        super().__init__(oid, context)
        # psycopg looks `load` up once per result: this makes it psycopg's own.
        self.load = _PSYCOPG_TIMESTAMPTZ(oid, context).load

    def load(self, data: bytes) -> object:  # replaced in __init__
        raise NotImplementedError


def _quiet(conn) -> bool:
    """True when the connection is open, psycopg knows nothing wrong with it, and the
    server has sent nothing since the last answer (a poll, no round trip)."""
    if conn.closed or conn.pgconn.status != pq.ConnStatus.OK:
        return False
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLPRI)
    return not poller.poll(0)


def check_connection(conn) -> None:
    if _quiet(conn):
        return
    try:
        ConnectionPool.check_connection(conn)
    except Exception:
        from django.db import connections

        pool = getattr(connections["default"], "pool", None)
        if pool is not None and not pool.closed:
            pool.check()  # with the pool's own static check: no recursion into this one
        raise


def rollback_keeping_prepared(conn) -> None:
    """`conn.rollback()`, without psycopg forgetting the connection's prepared statements."""
    if conn._pipeline or conn._num_transactions or conn._tpc:
        conn.rollback()  # what psycopg's rollback treats apart (none of it is used here)
        return
    with conn.lock:
        if conn.pgconn.transaction_status != pq.TransactionStatus.IDLE:
            conn.wait(conn._exec_command(b"ROLLBACK"))


def queue_command(conn, command: bytes) -> None:
    """In pipeline mode, queue a transaction command (BEGIN, COMMIT, ROLLBACK, SET LOCAL): it
    goes to the server with the pipeline's next sync. psycopg's `commit()` and `rollback()`
    sync at once (a round trip each), and a ROLLBACK run as a query makes psycopg forget the
    connection's prepared statements, as its `rollback()` does. This goes through psycopg's
    generator for commands, as `rollback_keeping_prepared` does."""
    with conn.lock:
        conn.wait(conn._exec_command(command))


def send_together(pipeline) -> None:
    """Have a psycopg pipeline write what is queued in one go, when results are wanted.

    psycopg writes each statement of a pipeline to the socket as it is queued: its pipeline
    loop moves one queued command into libpq's buffer per pass, polling the socket and
    writing the buffer each time. A booking's two round trips took nine writes and thirteen
    polls that way, each a system call that gives up the interpreter's lock (which another
    thread of the web process may then take), and PostgreSQL woke for each write. With this,
    a statement goes into libpq's buffer as it is queued and the buffer is written when
    results are fetched, or at a sync (libpq writes its buffer then): two writes and a few
    polls for the same statements, in the same order. The server runs them when they arrive,
    as before; psycopg reads their results at the fetch, as it does for any results that were
    not in yet when it sent a statement. libpq still writes on its own once its buffer holds
    64 kB, which no booking comes near.

    A fetch asks the server to send what it has (a flush request, "H"), except right after a
    sync: the server sends everything at a sync, so psycopg's flush request at the pipeline's
    end (after its sync) would be a write of its own, and a wake-up of the server, for nothing.

    For this pipeline only (psycopg makes a new one each time it enters pipeline mode).
    `_communicate_gen` is psycopg's own step, which runs the queued commands and writes them,
    and `_fetch_gen` the one that reads results; psycopg is pinned. If an upgrade changed
    them, tests/test_postgres_pool.py compares what pipelines give with and without this, and
    tests/booking/test_api_bookings_committed.py counts a booking's writes."""
    queue = pipeline.command_queue
    sync = pipeline.pgconn.pipeline_sync
    fetch = pipeline._fetch_gen
    synced = [False]  # the last command put in the buffer was a sync

    def into_the_buffer():  # a generator, as the step it replaces: it never waits
        while queue:
            command = queue.popleft()
            command()
            synced[0] = command == sync
        return
        yield

    def fetch_unless_synced(*, flush: bool):
        return fetch(flush=flush and not synced[0])

    pipeline._communicate_gen = into_the_buffer
    pipeline._fetch_gen = fetch_unless_synced


# How long a web thread keeps its connection before handing it back to the pool, which
# then recycles it at its own maximum lifetime.
KEEP_SECONDS = 300.0


class DatabaseWrapper(base.DatabaseWrapper):
    # Set on the web processes' request threads (config/http_bridge.py): a fixed handful of
    # threads that serve one request after another, each keeping its connection between
    # requests instead of taking one from the pool and giving it back every time.
    keep_between_requests = False

    def connect(self) -> None:
        super().connect()
        if self.keep_between_requests:
            self.close_at = time.monotonic() + KEEP_SECONDS

    def close_if_health_check_failed(self) -> None:
        """A connection kept from an earlier request is checked as the pool checks one
        before lending it (`_quiet`: a poll, no round trip); anything amiss sends it back to
        the pool, which checks it for real, and the request takes another."""
        if self.connection is None or not self.keep_between_requests:
            super().close_if_health_check_failed()
            return
        if not self.health_check_done:
            if not _quiet(self.connection):
                self.close()
            self.health_check_done = True

    def close_if_unusable_or_obsolete(self) -> None:
        # A request that ended with a transaction still open on the server (a pipeline's
        # BEGIN, say, cut short) must not hand it to the next request: the connection goes
        # back to the pool, whose reset rolls it back (or discards a broken one).
        if (
            self.connection is not None
            and not self.in_atomic_block
            and self.connection.info.transaction_status != pq.TransactionStatus.IDLE
        ):
            self.close()
            return
        super().close_if_unusable_or_obsolete()

    def get_connection_params(self) -> dict:
        params = super().get_connection_params()
        if settings.USE_TZ and self.settings_dict["TIME_ZONE"] is None:
            # The connection's time zone is then UTC (Django's _configure_timezone).
            context = adapt.AdaptersMap(params["context"])
            context.register_loader(TIMESTAMPTZ_OID, UtcTimestamptzLoader)
            params["context"] = context
        return params

    @property
    def pool(self):
        pool = super().pool
        # Django passes ConnectionPool.check_connection (CONN_HEALTH_CHECKS); no setting
        # names another, so the pool's attribute is replaced once. tests/model/test_faults.py
        # restarts PostgreSQL under a running server to hold this to account.
        if pool is not None and pool._check is not check_connection:
            pool._check = check_connection
        return pool

    def _rollback(self) -> None:
        if self.connection is not None:
            with debug_transaction(self, "ROLLBACK"), self.wrap_database_errors:
                rollback_keeping_prepared(self.connection)

    def _set_autocommit(self, autocommit: bool) -> None:
        # Django sets autocommit on every connection it takes from the pool; a pooled
        # connection already is in autocommit, and psycopg's setter takes its lock anyway.
        if self.connection.autocommit != autocommit:
            super()._set_autocommit(autocommit)
