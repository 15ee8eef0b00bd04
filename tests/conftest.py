"""Personas and a small lab shared by the suite."""

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client

from booking.models import Experiment, Group, Pool, Relay
from tests.factories import make_experiment, make_group, make_pool, make_relay, make_user

# A fixed "now" for tests that freeze the clock: a Monday morning.
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RELAY_SECRET = "test-relay-secret-0123456789abcdef"


@pytest.fixture(autouse=True)
def relay_secret_env(monkeypatch):
    """The test relays' HS256 secret lives in the environment, as in production."""
    monkeypatch.setenv("RELAY_TEST_SECRET", RELAY_SECRET)


@dataclass
class Lab:
    relay: Relay
    pend00: Experiment
    pend01: Experiment
    hidden: Experiment
    pool: Pool
    other_pool: Pool
    group: Group
    student: User
    student2: User
    outsider: User
    maintainer: User


@pytest.fixture
def frozen():
    """The clock stands at NOW (and can be moved with frozen.move_to)."""
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def lab(db) -> Lab:
    relay = make_relay()
    pend00 = make_experiment("pend00", relay)
    pend01 = make_experiment("pend01", relay)
    hidden = make_experiment("dev00", relay, public=False)
    maintainer = make_user("maintainer", first_name="Mia", last_name="Maintainer")
    hidden.maintainers.add(maintainer)
    pool = make_pool(
        "pendulums",
        [pend00, pend01, hidden],
        min_duration=300,
        max_duration=1800,
        book_ahead=7 * 86400,
        start_in_past=120,
        max_bookings=2,
        grace_period=300,
        extend_step=300,
        max_extension=900,
    )
    other_pool = make_pool("others", [make_experiment("spin00", relay)])
    student = make_user("student", first_name="Sam", last_name="Student", email="sam@example.org")
    student2 = make_user("student2", first_name="Alex", last_name="Other")
    outsider = make_user("outsider", first_name="Olly", last_name="Outsider")
    group = make_group("course-x", [pool], [student, student2, maintainer])
    return Lab(
        relay,
        pend00,
        pend01,
        hidden,
        pool,
        other_pool,
        group,
        student,
        student2,
        outsider,
        maintainer,
    )


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def student_client(lab: Lab) -> Client:
    return client_for(lab.student)


@pytest.fixture
def student2_client(lab: Lab) -> Client:
    return client_for(lab.student2)


@pytest.fixture
def outsider_client(lab: Lab) -> Client:
    return client_for(lab.outsider)


@pytest.fixture
def live_passwords(lab):
    """Rehash the personas' passwords ("pw-<username>") for a server with production settings."""
    from django.contrib.auth.hashers import make_password

    for user in User.objects.all():
        user.password = make_password(f"pw-{user.username}", hasher="pbkdf2_sha256")
        user.save(update_fields=["password"])
