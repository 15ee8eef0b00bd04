"""Settings helpers, system checks and the in-process job runner."""

import threading
import time
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from booking.checks import channel_layer_check
from booking.models import Booking
from config import scheduler
from config.settings.env import PREPARE_THRESHOLD, database_from_url, env_bool, env_int
from tests.factories import make_booking

IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
REDIS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer"}}


@pytest.mark.parametrize(
    ("layers", "broker", "processes", "ids"),
    [
        (IN_MEMORY, "", 1, []),
        (IN_MEMORY, "redis://127.0.0.1:6379/0", 1, ["platform.E001"]),
        (IN_MEMORY, "", 3, ["platform.E002"]),
        (IN_MEMORY, "redis://x", 2, ["platform.E001", "platform.E002"]),
        (REDIS, "redis://x", 4, []),
    ],
)
def test_the_in_memory_layer_is_refused_where_it_cannot_work(
    settings, layers, broker, processes, ids
):
    settings.CHANNEL_LAYERS = layers
    settings.CELERY_BROKER_URL = broker
    settings.WEB_PROCESSES = processes
    assert [error.id for error in channel_layer_check(None)] == ids


def test_database_urls(tmp_path):
    sqlite = database_from_url(f"sqlite:///{tmp_path}/x.sqlite3", pool_max=8)
    assert sqlite["ENGINE"].endswith("sqlite3")
    assert sqlite["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in sqlite["OPTIONS"]["init_command"]
    pg = database_from_url(
        "postgres://u:p%40ss@db.example.org:5433/lab?sslmode=require", pool_max=4
    )
    assert (pg["NAME"], pg["USER"], pg["PASSWORD"], pg["HOST"], pg["PORT"]) == (
        "lab",
        "u",
        "p@ss",
        "db.example.org",
        "5433",
    )
    assert pg["CONN_MAX_AGE"] == 0 and pg["OPTIONS"]["pool"]["max_size"] == 4
    assert pg["OPTIONS"]["sslmode"] == "require"
    assert "pool" not in database_from_url("postgres://u@h/db", pool_max=0)["OPTIONS"]
    # Bound on the server and prepared on reuse, unless a pooler in front cannot keep
    # prepared statements.
    assert pg["OPTIONS"]["server_side_binding"] is True
    assert pg["OPTIONS"]["prepare_threshold"] == PREPARE_THRESHOLD
    unprepared = database_from_url("postgres://u@h/db", pool_max=4, prepared=False)
    assert unprepared["OPTIONS"]["prepare_threshold"] is None
    assert unprepared["OPTIONS"]["server_side_binding"] is True
    with pytest.raises(ImproperlyConfigured):
        database_from_url("mysql://x/y", pool_max=1)


def test_strict_environment_helpers(monkeypatch):
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured):
        env_bool("X_FLAG")
    monkeypatch.setenv("X_FLAG", "off")
    assert env_bool("X_FLAG", True) is False
    monkeypatch.setenv("X_NUM", "ten")
    with pytest.raises(ImproperlyConfigured):
        env_int("X_NUM", 1)


@pytest.mark.django_db(transaction=True)
def test_the_embedded_default_runs_the_periodic_jobs_in_process(lab, settings, monkeypatch):
    settings.JOBS_IN_PROCESS = True
    settings.JOB_INTERVAL_SECONDS = 0.05
    monkeypatch.setattr(scheduler, "_started", threading.Event())
    overdue = make_booking(
        lab.student, lab.pool, lab.pend00, timezone.now() - timedelta(minutes=30)
    )
    stop = scheduler.start_in_process_jobs()
    try:
        assert stop is not None
        assert scheduler.start_in_process_jobs() is None  # one runner per process
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if Booking.objects.get(pk=overdue.pk).status == "no_show":
                break
            time.sleep(0.05)  # polling the database, bounded by the deadline
        assert Booking.objects.get(pk=overdue.pk).status == "no_show"
    finally:
        stop.set()


@pytest.mark.parametrize("module", ["config.wsgi", "config.asgi"])
def test_loading_the_application_freezes_what_it_loaded(module, tmp_path):
    """Full garbage collections in a web process skip the objects loaded at start-up."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = f"import gc, {module}; print(gc.get_freeze_count())"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "JOBS_IN_PROCESS": "0",
    }
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed program
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) > 10_000


@pytest.mark.parametrize(
    ("threads", "queue", "expected"),
    [
        ("", "", "WSGIBridge 2 3 0.001"),  # the defaults
        ("3", "10", "WSGIBridge 3 10 0.001"),
        ("2", "0", "WSGIBridge 2 0 0.001"),  # no limit on the wait for a thread
        ("0", "", "ASGIHandler - - 0.005"),  # Django's own ASGI handler, Python's switch interval
        ("-1", "", "WEB_THREADS must be 0 or more"),
        ("2", "-1", "WEB_QUEUE_TIMEOUT must be 0 or more"),
    ],
)
def test_web_threads_choose_how_http_runs_under_asgi(threads, queue, expected, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = (
        "import sys, config.asgi as a; http = a.application.application_mapping['http']; "
        "pool = getattr(http, 'executor', None); "
        "print(type(http).__name__, pool._max_workers if pool else '-', "
        "getattr(http, 'queue_timeout', '-'), sys.getswitchinterval())"
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "JOBS_IN_PROCESS": "0",
        "WEB_THREADS": threads,
        "WEB_QUEUE_TIMEOUT": queue,
    }
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed program
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True
    )
    if "must be" in expected:
        assert done.returncode != 0 and expected in done.stderr
    else:
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == expected.split()


@pytest.mark.parametrize(
    ("pool", "threads", "refused"),
    [("8", "2", False), ("3", "2", False), ("2", "2", True), ("4", "6", True), ("0", "4", False)],
)
def test_the_pool_has_connections_beyond_those_the_request_threads_keep(pool, threads, refused):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        # Settings only: nothing connects.
        "DATABASE_URL": "postgres://user:secret@127.0.0.1:1/labbook",
        "DATABASE_POOL_MAX": pool,
        "WEB_THREADS": threads,
    }
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed program
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
    )
    if refused:
        assert done.returncode != 0
        assert f"DATABASE_POOL_MAX must be more than WEB_THREADS ({threads})" in done.stderr
    else:
        assert done.returncode == 0, done.stderr


def test_every_model_change_has_its_migration(db):
    import io

    from django.core.management import call_command

    out = io.StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out)
    except SystemExit as exit_:
        pytest.fail(f"makemigrations --check exited {exit_.code}: {out.getvalue()}")
