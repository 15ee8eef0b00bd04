"""booking.services.guest_create: users without a password, with safe unique names."""

import pytest
from django.contrib.auth.models import User

from booking.errors import ApiError
from booking.models import AuditEntry
from booking.services import guest_create, guest_join
from booking.services.guests import (
    GUEST_EMAIL_INVALID,
    GUEST_NAME_REQUIRED,
    GUEST_NAME_TOO_LONG,
    guest_username,
)
from tests.conftest import NOW


def create(**fields) -> User:
    values = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org"}
    return guest_create(**{**values, **fields}, now=NOW)


@pytest.mark.django_db
def test_a_guest_has_no_usable_password_and_a_marked_name():
    guest = create(first_name="  Ada  Maria ", email="Ada@Example.ORG")
    guest.refresh_from_db()
    assert guest.first_name == "Ada Maria" and guest.last_name == "Lovelace"
    assert guest.email == "Ada@example.org"
    assert not guest.has_usable_password()
    assert guest.is_active and not guest.is_staff and not guest.is_superuser
    assert guest.date_joined == NOW
    assert guest.username.startswith("guest-ada-maria-lovelace-")
    assert AuditEntry.objects.filter(action="user.guest_create", object_id=str(guest.pk)).exists()


@pytest.mark.parametrize(
    ("first", "last", "stem"),
    [
        ("Zoë", "Ñúñez", "guest-zoe-nunez-"),
        ("<script>", "'; DROP TABLE", "guest-script-drop-table-"),
        ("李", "王", "guest-user-"),
        ("a" * 100, "b", "guest-" + "a" * 40 + "-"),
    ],
)
def test_usernames_are_ascii_short_and_random_at_the_end(first, last, stem):
    name = guest_username(first, last)
    assert name.startswith(stem)
    assert len(name) <= 60
    assert all(c.isascii() and (c.isalnum() or c == "-") for c in name)
    assert guest_username(first, last) != name


@pytest.mark.django_db
def test_guests_with_one_name_get_distinct_users():
    users = {create().username for _ in range(5)}
    assert len(users) == 5


@pytest.mark.django_db
def test_a_collision_draws_another_name(monkeypatch):
    from booking.services import guests

    taken = create()
    names = iter([taken.username, taken.username, "guest-ada-lovelace-fresh1"])
    monkeypatch.setattr(guests, "guest_username", lambda first, last: next(names))
    assert create().username == "guest-ada-lovelace-fresh1"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"first_name": " "}, GUEST_NAME_REQUIRED),
        ({"last_name": ""}, GUEST_NAME_REQUIRED),
        ({"last_name": "x" * 151}, GUEST_NAME_TOO_LONG),
        ({"email": "nope"}, GUEST_EMAIL_INVALID),
        ({"email": ""}, GUEST_EMAIL_INVALID),
        ({"email": "a@" + "b" * 260 + ".org"}, GUEST_EMAIL_INVALID),
    ],
)
def test_it_refuses_bad_details(fields, message):
    with pytest.raises(ApiError) as refused:
        create(**fields)
    assert refused.value.detail == message and refused.value.status == 400
    assert not User.objects.exists()


def test_guest_join_is_all_or_nothing(lab):
    from booking.services import group_access_code_rotate

    before = User.objects.count()
    with pytest.raises(ApiError):
        guest_join(code="wrong", first_name="Ada", last_name="L", email="ada@example.org", now=NOW)
    assert User.objects.count() == before
    code = group_access_code_rotate(group=lab.group, now=NOW)
    user, group = guest_join(
        code=code, first_name="Ada", last_name="L", email="ada@example.org", now=NOW
    )
    assert group == lab.group and group.members.filter(pk=user.pk).exists()
