"""Django's PostgreSQL backend, with a connection-pool check fit for a database restart.

psycopg_pool checks a connection before lending it and, when the check fails, tries the
next one after a growing pause (1, 2, 4, 8 s...). After a PostgreSQL restart every idle
connection is dead, so with a few of them a request waited past the pool's timeout (a 503)
although the server had long been back. Here the first failed check checks every idle
connection of the pool at once: the dead ones are replaced in the background, and the
request gets a fresh connection after the first pause.
"""

from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool


def check_connection(conn) -> None:
    try:
        ConnectionPool.check_connection(conn)
    except Exception:
        from django.db import connections

        pool = getattr(connections["default"], "pool", None)
        if pool is not None:
            pool.check()  # with the pool's own static check: no recursion into this one
        raise


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        pool = super().pool
        # Django passes ConnectionPool.check_connection (CONN_HEALTH_CHECKS); no setting
        # names another, so the pool's attribute is replaced once. tests/model/test_faults.py
        # restarts PostgreSQL under a running server to hold this to account.
        if pool is not None and pool._check is not check_connection:
            pool._check = check_connection
        return pool
