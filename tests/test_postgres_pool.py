"""The PostgreSQL connection pool's check (config/postgresql), against a real server.

The test command always starts a private PostgreSQL server (TEST_POSTGRES_URL), so this runs
in the SQLite pass too.
"""

import os

import psycopg
import pytest

from tests.support.processes import wait_until


def test_the_pool_check_makes_no_round_trip_yet_finds_a_dead_connection():
    from config.postgresql.base import check_connection

    url = os.environ["TEST_POSTGRES_URL"]
    with (
        psycopg.connect(url, autocommit=True) as watcher,
        psycopg.connect(url, autocommit=True) as pooled,
    ):
        pid = pooled.info.backend_pid
        pooled.execute("SELECT 'the last statement'")
        check_connection(pooled)
        seen = "SELECT query FROM pg_stat_activity WHERE pid = %s"
        assert watcher.execute(seen, [pid]).fetchone() == ("SELECT 'the last statement'",)

        watcher.execute("SELECT pg_terminate_backend(%s)", [pid])
        wait_until(
            lambda: watcher.execute(seen, [pid]).fetchone() is None,
            timeout=10,
            what="the terminated backend to go",
        )
        with pytest.raises(psycopg.OperationalError):
            check_connection(pooled)
