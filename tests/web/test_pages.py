"""The students' pages through Django's test client: what each shows, and to whom."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.cache import caches

from booking.errors import MESSAGES
from booking.models import BookingStatus
from booking.rules import describe_duration
from tests.conftest import NOW, client_for
from tests.factories import make_booking, make_user
from web.policy_text import NO_QUOTA

pytestmark = pytest.mark.usefixtures("frozen")


def html(response) -> str:
    return response.content.decode()


class TestHome:
    def test_signed_out_it_offers_sign_in_and_a_join_code(self, client, lab):
        page = html(client.get("/"))
        assert 'href="/accounts/login/"' in page
        assert 'action="/join/"' in page and 'name="code"' in page
        assert "/pools/pendulums/" not in page

    def test_signed_in_it_lists_the_pools_and_my_bookings(self, student_client, lab):
        make_booking(lab.student, lab.pool, lab.pend00, NOW + timedelta(hours=2))
        make_booking(lab.student2, lab.pool, lab.pend01, NOW + timedelta(hours=3))
        page = html(student_client.get("/"))
        assert 'href="/pools/pendulums/"' in page
        assert "/pools/others/" not in page  # not a member there
        assert page.count('class="booking-card"') == 1

    def test_the_page_has_landmarks_and_a_skip_link(self, client, lab):
        page = html(client.get("/"))
        for marker in ("<header", '<nav aria-label="Main"', '<main id="main"', "<footer"):
            assert marker in page
        assert 'href="#main"' in page
        assert 'aria-live="polite"' in page


class TestPoolPage:
    def test_it_explains_the_policy_in_plain_words(self, student_client, lab):
        response = student_client.get("/pools/pendulums/")
        assert response.status_code == 200
        page = html(response)
        assert "A booking lasts from 5 minutes to 30 minutes." in page
        assert "You can book up to 7 days ahead." in page
        assert "You can hold 2 current or upcoming bookings in this pool at a time." in page
        assert NO_QUOTA in page
        assert "in steps of 5 minutes, by up to 15 minutes in all" in page
        assert "within 5 minutes of the booked start" in page

    def test_it_carries_the_form_limits_and_the_visible_experiments(self, student_client, lab):
        page = html(student_client.get("/pools/pendulums/"))
        assert 'id="pool-config"' in page
        assert '"minMinutes": 5' in page and '"maxMinutes": 30' in page
        assert '<option value="pend00">' in page
        assert "dev00" not in page  # hidden, and the student does not maintain it

    def test_an_unavailable_experiment_cannot_be_chosen(self, student_client, lab):
        lab.pend01.available = False
        lab.pend01.unavailable_reason = "Belt replaced"
        lab.pend01.save()
        page = html(student_client.get("/pools/pendulums/"))
        assert '<option value="pend01" disabled>' in page
        assert "Belt replaced" in page

    def test_a_quota_is_described(self, student_client, lab):
        lab.pool.quota_period, lab.pool.quota_limit = 7 * 86400, 7200
        lab.pool.save()
        page = html(student_client.get("/pools/pendulums/"))
        assert "In any 7 days you can book at most 2 hours in total" in page

    def test_only_members_see_it(self, outsider_client, student_client, client, lab):
        assert outsider_client.get("/pools/pendulums/").status_code == 404
        assert student_client.get("/pools/others/").status_code == 404
        assert student_client.get("/pools/nope/").status_code == 404
        response = client.get("/pools/pendulums/")
        assert response.status_code == 302
        assert response["Location"] == "/accounts/login/?next=/pools/pendulums/"


class TestMyBookings:
    def test_it_shows_mine_upcoming_and_past_and_never_others(self, student_client, lab):
        now_running = make_booking(lab.student, lab.pool, lab.pend00, NOW - timedelta(minutes=5))
        later = make_booking(lab.student, lab.pool, lab.pend01, NOW + timedelta(days=1))
        past = make_booking(
            lab.student, lab.pool, lab.pend00, NOW - timedelta(days=2), status=BookingStatus.ENDED
        )
        others = make_booking(lab.student2, lab.pool, lab.pend01, NOW + timedelta(hours=1))
        page = html(student_client.get("/bookings/"))
        upcoming, rest = page.split('id="past-title"')
        assert now_running.reference in upcoming and later.reference in upcoming
        assert past.reference in rest and past.reference not in upcoming
        assert others.reference not in page
        assert f'href="/bookings/{later.id}.ics"' in upcoming
        assert upcoming.count('data-action="cancel"') == 2
        # Start is offered for the running booking now; the later one shows it at its start.
        assert upcoming.count('data-action="start"') == 2
        assert upcoming.count("hidden>Start") == 1
        assert "Extend by 5 minutes" in upcoming

    def test_times_are_rewritten_in_the_viewers_zone(self, student_client, lab):
        make_booking(lab.student, lab.pool, lab.pend00, NOW + timedelta(hours=1))
        page = html(student_client.get("/bookings/"))
        assert '<time datetime="2026-03-02T10:00:00Z" data-local="datetime">' in page
        assert "Mon 2 Mar 2026, 10:00 UTC" in page

    def test_it_needs_a_login(self, client, lab):
        response = client.get("/bookings/")
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


class TestBookingIcs:
    def test_the_owner_gets_an_ics_file(self, student_client, lab):
        booking = make_booking(lab.student, lab.pool, lab.pend00, NOW + timedelta(hours=1))
        response = student_client.get(f"/bookings/{booking.id}.ics")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/calendar")
        assert f'filename="booking-{booking.reference}.ics"' in response["Content-Disposition"]
        body = response.content.decode()
        assert "BEGIN:VEVENT" in body and booking.reference in body
        assert "DTSTART:20260302T100000Z" in body

    def test_another_users_booking_is_404(self, student2_client, outsider_client, lab):
        booking = make_booking(lab.student, lab.pool, lab.pend00, NOW + timedelta(hours=1))
        assert student2_client.get(f"/bookings/{booking.id}.ics").status_code == 404
        assert outsider_client.get(f"/bookings/{booking.id}.ics").status_code == 404

    def test_it_needs_a_login(self, client, lab):
        booking = make_booking(lab.student, lab.pool, lab.pend00, NOW + timedelta(hours=1))
        assert client.get(f"/bookings/{booking.id}.ics").status_code == 302


class TestLookupPage:
    def test_it_finds_a_booking_by_reference_and_last_name(self, client, lab):
        booking = make_booking(lab.student, lab.pool, lab.pend00, NOW + timedelta(hours=1))
        response = client.post(
            "/bookings/lookup/", {"reference": booking.reference.lower(), "last_name": "student"}
        )
        assert response.status_code == 200
        page = html(response)
        assert f"Booking {booking.reference}" in page
        assert "Pend00" in page and "it cannot be changed with a reference" in page

    @pytest.mark.parametrize("last_name", ["Other", "Stud"])
    def test_a_wrong_name_finds_nothing(self, client, lab, last_name):
        booking = make_booking(lab.student, lab.pool, lab.pend00, NOW + timedelta(hours=1))
        response = client.post(
            "/bookings/lookup/", {"reference": booking.reference, "last_name": last_name}
        )
        assert response.status_code == 404
        assert "No booking matches" in html(response)
        assert booking.reference not in html(response).split("</form>")[1]

    def test_an_empty_form_is_refused_without_a_lookup(self, client, lab):
        response = client.post("/bookings/lookup/", {"reference": "", "last_name": ""})
        assert response.status_code == 400
        assert "This field is required." in html(response)

    def test_it_is_throttled_like_the_api(self, client, lab):
        caches["throttle"].clear()
        body = {"reference": "ABCDEF", "last_name": "x"}
        statuses = [client.post("/bookings/lookup/", body).status_code for _ in range(21)]
        assert statuses[0] == 404 and statuses[-1] == 429
        assert MESSAGES["throttled"] in html(client.post("/bookings/lookup/", body))
        caches["throttle"].clear()


class TestSessionPage:
    def test_it_needs_no_login_and_holds_no_code(self, client, lab):
        response = client.get("/session/")
        assert response.status_code == 200
        page = html(response)
        assert "/static/web/session.js" in page
        assert 'aria-live="off"' in page and 'role="timer"' in page
        assert 'name="referrer" content="no-referrer"' in page


class TestStaticFiles:
    @pytest.mark.parametrize("name", ["common.js", "pool.js", "bookings.js", "session.js"])
    def test_our_scripts_are_served(self, client, name):
        response = client.get(f"/static/web/{name}")
        assert response.status_code == 200
        assert "javascript" in response["Content-Type"]

    def test_the_admin_styles_are_served_too(self, client):
        response = client.get("/static/admin/css/base.css")
        assert response.status_code == 200 and response["Content-Type"].startswith("text/css")

    def test_the_stylesheet_is_served(self, client):
        response = client.get("/static/web/web.css")
        assert response.status_code == 200 and response["Content-Type"].startswith("text/css")

    @pytest.mark.parametrize("path", ["../views/other.py", "..%2Fviews%2Fother.py", "nope.js"])
    def test_nothing_else_is(self, client, path):
        assert client.get(f"/static/web/{path}").status_code == 404


def test_extension_wording_follows_the_pool(student_client, lab):
    lab.pool.extend_step = 600
    lab.pool.save()
    make_booking(lab.student, lab.pool, lab.pend00, NOW - timedelta(minutes=1))
    page = html(student_client.get("/bookings/"))
    assert f"Extend by {describe_duration(600)}" in page


def test_a_pool_without_extensions_offers_none(student_client, lab):
    lab.pool.max_extension = 0
    lab.pool.save()
    make_booking(lab.student, lab.pool, lab.pend00, NOW - timedelta(minutes=1))
    page = html(student_client.get("/bookings/"))
    assert 'data-action="extend"' not in page
    assert 'data-extend-step="0"' in page


def test_a_guest_is_told_how_to_find_bookings_later(lab):
    guest = make_user("guest-sam-x1")
    guest.set_unusable_password()
    guest.save()
    page = html(client_for(guest).get("/bookings/"))
    assert "signed in as a guest in this browser only" in page
    assert User.objects.filter(username="guest-sam-x1").exists()
