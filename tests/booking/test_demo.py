"""manage.py demo: a demo lab with known logins, safe to run twice, refused in production."""

import re
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from booking.management.commands import demo
from booking.models import AuditEntry, Experiment, Group, Pool, Relay, Window
from booking.services.groups import access_code_hash, group_access_code_rotate


@pytest.fixture(autouse=True)
def embedded_database(monkeypatch):
    """The demo is for the embedded default; the suite also runs on PostgreSQL, where the
    refusal is tested on its own below."""
    monkeypatch.setattr(demo, "database_engine", lambda: "django.db.backends.sqlite3")


def run_demo(*flags: str) -> str:
    out = StringIO()
    call_command("demo", *flags, stdout=out)
    return out.getvalue()


def counts() -> dict[str, int]:
    models = (User, Relay, Experiment, Pool, Window, Group, AuditEntry)
    return {model.__name__: model.objects.count() for model in models}


@pytest.mark.django_db
def test_demo_loads_the_lab():
    output = run_demo()

    assert output.splitlines()[0] == "+ relay demo-relay"
    relay = Relay.objects.get()
    assert (relay.slug, relay.access_url, relay.algorithm, relay.secret_env) == (
        "demo-relay",
        "http://127.0.0.1:8001/access",
        "HS256",
        "DEMO_RELAY_SECRET",
    )
    assert list(Experiment.objects.values_list("slug", flat=True)) == [
        "pend00",
        "pend01",
        "spin00",
        "truss00",
    ]
    group = Group.objects.get(slug="demo-course")
    assert sorted(group.pools.values_list("slug", flat=True)) == ["mixed", "pendulums"]
    assert "{{session}}" in Pool.objects.get(slug="pendulums").ui_set.uis.first().url


@pytest.mark.django_db
def test_demo_pools_are_open_this_year_and_next():
    run_demo()

    year = timezone.now().year
    for pool in Pool.objects.all():
        window = pool.windows.get()
        assert (window.kind, window.start, window.end) == (
            "allowed",
            datetime(year, 1, 1, tzinfo=UTC),
            datetime(year + 2, 1, 1, tzinfo=UTC),
        )


@pytest.mark.django_db
def test_running_demo_twice_changes_nothing_the_second_time():
    run_demo()
    before = counts()

    output = run_demo()

    assert counts() == before
    assert not [line for line in output.splitlines() if line[:2] in {"+ ", "~ ", "- "}]
    assert "DEMO-JOIN-CODE" in output


@pytest.mark.django_db
def test_the_student_signs_in_with_the_printed_password():
    output = run_demo()

    username, password = re.search(r"student:\s+(\S+) / (\S+)", output).groups()
    user = authenticate(username=username, password=password)
    assert user is not None
    assert (user.username, user.first_name, user.last_name) == ("student", "Sam", "Student")
    assert not user.is_staff
    assert Group.objects.get(slug="demo-course").members.filter(pk=user.pk).exists()
    admin_name, admin_password = re.search(r"lab admin:\s+(\S+) / (\S+)", output).groups()
    admin = authenticate(username=admin_name, password=admin_password)
    assert admin is not None
    assert (admin.is_staff, admin.is_superuser, admin.first_name) == (True, True, "Lab")


@pytest.mark.django_db
def test_demo_prints_the_access_code_and_where_to_go(settings):
    settings.PLATFORM_URL = "https://lab.example.org"

    output = run_demo()

    code = re.search(r"access code of demo-course: (\S+)", output).group(1)
    assert code == "DEMO-JOIN-CODE"
    assert Group.objects.get(slug="demo-course").access_code_hash == access_code_hash(code)
    for url in (
        "https://lab.example.org/admin/",
        "https://lab.example.org/api/v1/pools/",
        "https://lab.example.org/api/v1/schema/",
    ):
        assert url in output


@pytest.mark.django_db
def test_demo_leaves_a_rotated_access_code_alone():
    run_demo()
    group = Group.objects.get(slug="demo-course")
    group_access_code_rotate(group=group, now=timezone.now(), code="ROTATED-BY-STAFF")

    output = run_demo()

    group.refresh_from_db()
    assert group.access_code_hash == access_code_hash("ROTATED-BY-STAFF")
    assert "DEMO-JOIN-CODE" not in output


@pytest.mark.django_db
def test_demo_refuses_a_production_database_unless_forced(settings, monkeypatch):
    settings.DEBUG = False
    monkeypatch.setattr(demo, "database_engine", lambda: "django.db.backends.postgresql")

    with pytest.raises(CommandError) as refusal:
        run_demo()

    assert str(refusal.value) == demo.REFUSAL
    assert not User.objects.exists()
    assert not Relay.objects.exists()
    run_demo("--force")
    assert User.objects.filter(username="student").exists()


@pytest.mark.django_db
def test_demo_runs_against_postgresql_in_debug_mode(settings, monkeypatch):
    settings.DEBUG = True
    monkeypatch.setattr(demo, "database_engine", lambda: "django.db.backends.postgresql")

    run_demo()

    assert User.objects.filter(username="labadmin", is_superuser=True).exists()
