"""Joining a group by link or code: signed in, or as a guest who can then book."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.core.cache import caches

from booking.errors import MESSAGES
from booking.models import AuditEntry, Booking
from booking.services import group_access_code_rotate
from tests.conftest import NOW
from web import messages as text

pytestmark = pytest.mark.usefixtures("frozen")

GUEST = {"first_name": "Gina", "last_name": "Guest", "email": "Gina@Example.ORG"}


@pytest.fixture
def code(lab) -> str:
    return group_access_code_rotate(group=lab.group, now=NOW)


def html(response) -> str:
    return response.content.decode()


def messages_of(response) -> list[str]:
    return [str(m) for m in response.wsgi_request._messages]


class TestSignedIn:
    def test_the_link_joins_and_goes_to_the_pool(self, outsider_client, lab, code):
        response = outsider_client.get(f"/join/{code}/")
        assert response.status_code == 302 and response["Location"] == "/pools/pendulums/"
        assert lab.group.members.filter(pk=lab.outsider.pk).exists()
        assert text.JOINED.format(group=lab.group.title) in messages_of(response)
        assert outsider_client.get("/pools/pendulums/").status_code == 200

    def test_a_group_with_several_pools_goes_home(self, outsider_client, lab, code):
        lab.group.pools.add(lab.other_pool)
        response = outsider_client.get(f"/join/{code}/")
        assert response["Location"] == "/"
        page = html(outsider_client.get("/"))
        assert "/pools/pendulums/" in page and "/pools/others/" in page

    def test_the_form_joins_too(self, outsider_client, lab, code):
        response = outsider_client.post("/join/", {"code": f"  {code} "})
        assert response.status_code == 302 and response["Location"] == "/pools/pendulums/"
        assert lab.group.members.filter(pk=lab.outsider.pk).exists()

    def test_joining_twice_is_harmless(self, student_client, lab, code):
        assert student_client.get(f"/join/{code}/").status_code == 302
        assert lab.group.members.filter(pk=lab.student.pk).count() == 1

    def test_a_bad_code_says_so(self, outsider_client, lab, code):
        response = outsider_client.get("/join/not-a-code/")
        assert response.status_code == 404
        assert text.JOIN_CODE_INVALID in html(response)
        assert not lab.group.members.filter(pk=lab.outsider.pk).exists()

    def test_a_code_with_a_slash_is_just_a_bad_code(self, outsider_client, client, lab):
        assert outsider_client.post("/join/", {"code": "a/b"}).status_code == 404
        assert client.post("/join/", {"code": "a/b"}).status_code == 404

    def test_an_empty_form_is_refused(self, outsider_client, lab):
        assert outsider_client.post("/join/", {"code": ""}).status_code == 400

    def test_guessing_is_throttled_with_the_api(self, outsider_client, lab):
        caches["throttle"].clear()
        statuses = [outsider_client.get(f"/join/guess-{i}/").status_code for i in range(21)]
        assert statuses[:20] == [404] * 20 and statuses[20] == 429
        api = outsider_client.post(
            "/api/v1/groups/join/", {"code": "x"}, content_type="application/json"
        )
        assert api.status_code == 429  # one budget for the page and the API
        assert MESSAGES["throttled"] in html(outsider_client.get("/join/guess/"))
        caches["throttle"].clear()


class TestSignedOut:
    def test_the_link_offers_sign_in_or_guest(self, client, lab, code):
        response = client.get(f"/join/{code}/")
        assert response.status_code == 200
        page = html(response)
        assert "Join Course-X" in page
        assert f'href="/accounts/login/?next=/join/{code}/"' in page
        assert f'action="/join/{code}/guest/"' in page
        for field in ("first_name", "last_name", "email"):
            assert f'name="{field}"' in page

    def test_the_form_sends_a_visitor_to_the_codes_page(self, client, lab, code):
        response = client.post("/join/", {"code": code})
        assert response.status_code == 302 and response["Location"] == f"/join/{code}/"

    def test_a_bad_code_offers_nothing(self, client, lab):
        response = client.get("/join/not-a-code/")
        assert response.status_code == 404
        assert "/guest/" not in html(response)

    def test_an_expired_code_offers_nothing(self, client, lab):
        code = group_access_code_rotate(
            group=lab.group, now=NOW, expires_at=NOW - timedelta(seconds=1)
        )
        assert client.get(f"/join/{code}/").status_code == 404

    def test_signing_in_comes_back_and_joins(self, client, lab, code):
        response = client.post(
            "/accounts/login/",
            {"username": "outsider", "password": "pw-outsider", "next": f"/join/{code}/"},
        )
        assert response["Location"] == f"/join/{code}/"
        assert client.get(response["Location"])["Location"] == "/pools/pendulums/"
        assert lab.group.members.filter(pk=lab.outsider.pk).exists()


class TestGuest:
    def test_a_guest_joins_is_signed_in_and_can_book(
        self, client, lab, code, django_capture_on_commit_callbacks
    ):
        response = client.post(f"/join/{code}/guest/", GUEST)
        assert response.status_code == 302 and response["Location"] == "/pools/pendulums/"
        guest = User.objects.get(last_name="Guest")
        assert guest.username.startswith("guest-gina-guest-")
        assert not guest.has_usable_password()
        assert guest.email == "Gina@example.org"
        assert lab.group.members.filter(pk=guest.pk).exists()
        assert any("as a guest" in m for m in messages_of(response))
        assert client.session.get_expire_at_browser_close()
        assert client.get("/pools/pendulums/").status_code == 200

        start = NOW + timedelta(hours=1)
        with django_capture_on_commit_callbacks(execute=True):
            booked = client.post(
                "/api/v1/bookings/",
                {
                    "pool": "pendulums",
                    "start": start.isoformat(),
                    "end": (start + timedelta(minutes=10)).isoformat(),
                },
                content_type="application/json",
            )
        assert booked.status_code == 201
        reference = booked.json()["reference"]
        assert [m.to for m in mail.outbox] == [["Gina@example.org"]]
        assert reference in mail.outbox[0].subject

        found = client.post("/bookings/lookup/", {"reference": reference, "last_name": "guest"})
        assert found.status_code == 200 and f"Booking {reference}" in html(found)

    def test_invalid_details_are_refused_and_create_nobody(self, client, lab, code):
        before = User.objects.count()
        response = client.post(f"/join/{code}/guest/", {**GUEST, "email": "not-an-address"})
        assert response.status_code == 400
        page = html(response)
        assert "Enter a valid email address." in page
        assert 'aria-describedby="id_email_error"' in page and 'id="id_email_error"' in page
        response = client.post(f"/join/{code}/guest/", {**GUEST, "last_name": "  "})
        assert response.status_code == 400
        assert User.objects.count() == before

    def test_a_bad_code_creates_nobody(self, client, lab):
        before = User.objects.count()
        response = client.post("/join/not-a-code/guest/", GUEST)
        assert response.status_code == 404
        assert text.JOIN_CODE_INVALID in html(response)
        assert User.objects.count() == before
        assert not AuditEntry.objects.filter(action="user.guest_create").exists()

    def test_the_guest_form_is_no_way_around_the_throttle(self, client, lab, code):
        caches["throttle"].clear()
        bad = {**GUEST, "email": "not-an-address"}
        statuses = [client.post(f"/join/guess-{i}/guest/", bad).status_code for i in range(20)]
        assert statuses == [404] * 20  # a bad code is refused before the form is read
        response = client.post(f"/join/{code}/guest/", GUEST)
        assert response.status_code == 429
        assert not User.objects.filter(last_name="Guest").exists()
        caches["throttle"].clear()

    def test_a_signed_in_user_is_not_made_a_guest(self, student_client, lab, code):
        before = User.objects.count()
        response = student_client.post(f"/join/{code}/guest/", GUEST)
        assert response["Location"] == f"/join/{code}/"
        assert User.objects.count() == before

    def test_the_guest_form_needs_post(self, client, lab, code):
        assert client.get(f"/join/{code}/guest/").status_code == 405

    def test_two_guests_with_one_name_are_two_users(self, lab, code):
        from django.test import Client

        for _ in range(2):
            assert Client().post(f"/join/{code}/guest/", GUEST).status_code == 302
        names = list(User.objects.filter(last_name="Guest").values_list("username", flat=True))
        assert len(set(names)) == 2
        assert not Booking.objects.exists()
