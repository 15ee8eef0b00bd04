"""Plain factory functions for test data."""

import itertools
from datetime import datetime, timedelta

from django.contrib.auth.models import User

from booking.models import Booking, BookingStatus, Experiment, Group, Pool, Relay, Stream, Window

_counter = itertools.count(1)


def make_user(username: str | None = None, **fields) -> User:
    username = username or f"user{next(_counter)}"
    fields.setdefault("last_name", username.capitalize())
    user = User.objects.create_user(username=username, password="pw-" + username, **fields)
    return user


def make_relay(slug: str = "relay-a", **fields) -> Relay:
    fields.setdefault("access_url", f"http://127.0.0.1:9/{slug}/access")
    fields.setdefault("secret_env", "RELAY_TEST_SECRET")
    return Relay.objects.create(slug=slug, **fields)


def make_experiment(slug: str, relay: Relay | None = None, **fields) -> Experiment:
    fields.setdefault("title", slug.title())
    fields.setdefault("topic_stub", slug)
    experiment = Experiment.objects.create(slug=slug, **fields)
    if relay is not None:
        Stream.objects.create(
            experiment=experiment, name="data", relay=relay, scopes=["read", "write"]
        )
        Stream.objects.create(experiment=experiment, name="video", relay=relay, scopes=["read"])
    return experiment


def make_pool(slug: str, experiments: list[Experiment], **policy) -> Pool:
    pool = Pool.objects.create(slug=slug, title=slug.title(), **policy)
    pool.experiments.set(experiments)
    return pool


def make_group(slug: str, pools: list[Pool], members: list[User]) -> Group:
    group = Group.objects.create(slug=slug, title=slug.title())
    group.pools.set(pools)
    group.members.set(members)
    return group


def make_window(pool: Pool, kind: str, start: datetime, end: datetime) -> Window:
    return Window.objects.create(pool=pool, kind=kind, start=start, end=end)


def make_booking(
    user: User,
    pool: Pool,
    experiment: Experiment,
    start: datetime,
    minutes: int = 10,
    status: str = BookingStatus.BOOKED,
    **fields,
) -> Booking:
    end = start + timedelta(minutes=minutes)
    fields.setdefault("created_at", start - timedelta(hours=1))
    return Booking.objects.create(
        reference=f"T{next(_counter):05d}"[-6:],
        user=user,
        pool=pool,
        experiment=experiment,
        start=start,
        end=end,
        booked_end=end,
        status=status,
        **fields,
    )
