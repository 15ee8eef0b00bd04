"""The private calendar feed: an address per user, stored as a hash, replaceable."""

import hashlib
import re
from datetime import timedelta

import pytest

from booking.models import AuditEntry, BookingStatus
from tests.conftest import NOW, client_for
from tests.factories import make_booking
from web import messages as text
from web.models import CalendarFeed

pytestmark = pytest.mark.usefixtures("frozen")

FEED = re.compile(r'value="http://testserver(/calendar/(c_[A-Za-z0-9_-]{43})\.ics)"')


def feed_path(client) -> tuple[str, str]:
    match = FEED.search(client.get("/bookings/").content.decode())
    assert match, "no feed address on the page"
    return match.group(1), match.group(2)


def test_there_is_no_feed_until_asked_for(student_client, lab):
    page = student_client.get("/bookings/").content.decode()
    assert "Create my feed address" in page
    assert not FEED.search(page)
    assert not CalendarFeed.objects.exists()


def test_the_feed_lists_the_users_current_and_future_bookings(student_client, client, lab):
    running = make_booking(lab.student, lab.pool, lab.pend00, NOW - timedelta(minutes=5))
    later = make_booking(lab.student, lab.pool, lab.pend01, NOW + timedelta(days=2))
    past = make_booking(
        lab.student, lab.pool, lab.pend00, NOW - timedelta(days=1), status=BookingStatus.ENDED
    )
    cancelled = make_booking(
        lab.student, lab.pool, lab.pend00, NOW + timedelta(days=1), status=BookingStatus.CANCELLED
    )
    others = make_booking(lab.student2, lab.pool, lab.pend00, NOW + timedelta(hours=3))

    response = student_client.post("/calendar/new/")
    assert response.status_code == 302 and response["Location"] == "/bookings/#calendar-feed"
    path, token = feed_path(student_client)

    feed = client.get(path)  # no cookie: the address is the key
    assert feed.status_code == 200
    assert feed["Content-Type"].startswith("text/calendar")
    body = feed.content.decode()
    assert body.count("BEGIN:VEVENT") == 2
    assert running.reference in body and later.reference in body
    for absent in (past, cancelled, others):
        assert absent.reference not in body

    stored = CalendarFeed.objects.get(user=lab.student)
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(stored.__dict__)
    assert AuditEntry.objects.filter(action="calendar_feed.create").count() == 1


def test_the_page_shows_the_same_address_every_time(student_client, lab):
    student_client.post("/calendar/new/")
    assert feed_path(student_client) == feed_path(student_client)


def test_a_new_address_replaces_the_old(student_client, client, lab):
    student_client.post("/calendar/new/")
    old, _ = feed_path(student_client)
    response = student_client.post("/calendar/new/", follow=True)
    assert text.FEED_ROTATED in response.content.decode()
    new, _ = feed_path(student_client)
    assert new != old
    assert client.get(old).status_code == 404
    assert client.get(new).status_code == 200
    assert CalendarFeed.objects.count() == 1
    assert AuditEntry.objects.filter(action="calendar_feed.rotate").count() == 1


def test_each_user_has_an_own_feed(student_client, student2_client, client, lab):
    make_booking(lab.student, lab.pool, lab.pend00, NOW + timedelta(hours=1))
    theirs = make_booking(lab.student2, lab.pool, lab.pend01, NOW + timedelta(hours=1))
    student_client.post("/calendar/new/")
    student2_client.post("/calendar/new/")
    mine, _ = feed_path(student_client)
    assert theirs.reference not in client.get(mine).content.decode()
    assert feed_path(student_client) != feed_path(student2_client)


@pytest.mark.parametrize(
    "path",
    [
        "/calendar/c_" + "A" * 43 + ".ics",
        "/calendar/nothing.ics",
        "/calendar/" + "c_" + "x" * 500 + ".ics",
    ],
)
def test_an_unknown_address_is_404(client, lab, path):
    assert client.get(path).status_code == 404


def test_a_disabled_users_feed_stops(student_client, client, lab):
    student_client.post("/calendar/new/")
    path, _ = feed_path(student_client)
    lab.student.is_active = False
    lab.student.save()
    assert client.get(path).status_code == 404


def test_after_a_new_secret_key_the_old_address_works_and_a_new_one_is_offered(
    student_client, client, lab, settings
):
    student_client.post("/calendar/new/")
    path, _ = feed_path(student_client)
    settings.SECRET_KEY = "another-secret-key-" + "y" * 40
    page = client_for(lab.student).get("/bookings/").content.decode()  # a new sign-in too
    assert not FEED.search(page) and "Create my feed address" in page
    assert client.get(path).status_code == 200


def test_making_an_address_needs_a_signed_in_post(client, lab):
    assert client.post("/calendar/new/").status_code == 302  # to the login page
    assert client_for(lab.student).get("/calendar/new/").status_code == 405
    assert not CalendarFeed.objects.exists()
