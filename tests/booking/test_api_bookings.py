"""The booking REST API: every rule and error code through HTTP."""

import json
from datetime import timedelta

import pytest

from booking.errors import MESSAGES
from booking.models import Booking, BookingStatus
from tests.conftest import NOW, client_for
from tests.factories import make_booking, make_window

pytestmark = pytest.mark.usefixtures("frozen")


def at(minutes: float) -> str:
    return (NOW + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def book(client, start=0, end=10, pool="pendulums", experiment="pend00", **extra):
    body = {"pool": pool, "start": at(start), "end": at(end), **extra}
    if experiment is not None:
        body["experiment"] = experiment
    return client.post("/api/v1/bookings/", body, content_type="application/json")


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code
    assert body["detail"]


def test_it_books_an_experiment_and_shows_it(student_client, lab):
    response = book(student_client, start=5, end=20)
    assert response.status_code == 201
    body = response.json()
    assert body["pool"] == "pendulums"
    assert body["experiment"] == "pend00"
    assert body["start"] == at(5) and body["end"] == at(20)
    assert body["status"] == "booked"
    assert len(body["reference"]) == 6
    stored = Booking.objects.get(pk=body["id"])
    assert stored.user == lab.student and stored.reference == body["reference"]
    listed = student_client.get("/api/v1/bookings/").json()
    assert [b["id"] for b in listed] == [body["id"]]
    assert student_client.get(f"/api/v1/bookings/{body['id']}/").json() == body


def test_it_picks_a_free_experiment_when_none_is_named(student_client, student2_client, lab):
    first = book(student_client, experiment=None)
    second = book(student2_client, experiment=None)
    assert first.status_code == second.status_code == 201
    picked = {first.json()["experiment"], second.json()["experiment"]}
    assert picked == {"pend00", "pend01"}  # never the hidden one
    third = book(client_for(lab.maintainer), experiment=None)
    # the maintainer may use the hidden experiment, the only one still free
    assert third.status_code == 201 and third.json()["experiment"] == "dev00"


def test_it_refuses_any_experiment_when_all_are_taken(student_client, student2_client, lab):
    assert book(student_client, experiment="pend00").status_code == 201
    assert book(student2_client, experiment="pend01").status_code == 201
    response = book(client_for(lab.student2), start=5, end=15, experiment=None)
    assert_error(response, 409, "slot_taken")


def test_it_rejects_an_overlapping_booking(student_client, student2_client):
    assert book(student_client, start=0, end=10).status_code == 201
    assert_error(book(student2_client, start=9, end=19), 409, "slot_taken")
    # half-open: a booking may start exactly when the other ends
    assert book(student2_client, start=10, end=20).status_code == 201


def test_a_cancelled_booking_frees_the_slot(student_client, student2_client):
    booking = book(student_client).json()
    student_client.post(f"/api/v1/bookings/{booking['id']}/cancel/")
    assert book(student2_client).status_code == 201


@pytest.mark.parametrize(
    ("start", "end", "code"),
    [
        (-3, 10, "start_in_past"),
        (7 * 24 * 60 + 1, 7 * 24 * 60 + 11, "too_far_ahead"),
        (0, 4, "too_short"),
        (0, 31, "too_long"),
    ],
)
def test_it_applies_the_pool_policy(student_client, start, end, code):
    assert_error(book(student_client, start=start, end=end), 422, code)
    assert Booking.objects.count() == 0


def test_it_refuses_a_non_member(outsider_client):
    assert_error(book(outsider_client), 403, "not_member")
    assert Booking.objects.count() == 0


def test_it_refuses_outside_the_allowed_windows(student_client, lab):
    make_window(lab.pool, "allowed", NOW + timedelta(hours=1), NOW + timedelta(hours=2))
    assert_error(book(student_client, start=0, end=10), 422, "outside_window")
    assert book(student_client, start=60, end=70).status_code == 201


def test_it_refuses_a_denied_window(student_client, lab):
    make_window(lab.pool, "denied", NOW + timedelta(minutes=5), NOW + timedelta(minutes=6))
    assert_error(book(student_client, start=0, end=10), 422, "outside_window")


def test_it_limits_current_and_future_bookings(student_client):
    assert book(student_client, start=0, end=10).status_code == 201
    assert book(student_client, start=100, end=110).status_code == 201
    assert_error(book(student_client, start=200, end=210), 422, "max_bookings")


@pytest.mark.parametrize("quota", [False, True])
def test_a_booking_of_ones_own_that_overlaps_the_request_counts_once(student_client, lab, quota):
    """The user's booking is also a candidate's overlapping one: one row of the read, held
    once (with and without a quota)."""
    if quota:
        lab.pool.quota_period, lab.pool.quota_limit = 86400, 86400
        lab.pool.save()
    assert book(student_client, start=0, end=10).status_code == 201  # pend00
    second = book(student_client, start=0, end=10, experiment=None)
    assert second.status_code == 201, second.content
    assert second.json()["experiment"] == "pend01"
    assert_error(book(student_client, start=100, end=110), 422, "max_bookings")


def test_quota_counts_a_rolling_period_and_refunds_early_cancellation(student_client, lab):
    lab.pool.quota_period = 3600
    lab.pool.quota_limit = 1800
    lab.pool.max_bookings = 5
    lab.pool.save()
    first = book(student_client, start=0, end=20).json()
    assert_error(book(student_client, start=30, end=45), 422, "quota_exceeded")
    assert book(student_client, start=60, end=70).status_code == 201  # 10 + 20 min in an hour
    # Cancelling before the start gives the time back.
    future = book(student_client, start=200, end=230).json()
    student_client.post(f"/api/v1/bookings/{future['id']}/cancel/")
    assert book(student_client, start=200, end=230).status_code == 201
    assert first["status"] == "booked"


def test_a_booking_cancelled_while_running_counts_up_to_the_cancellation(
    student_client, lab, frozen
):
    lab.pool.quota_period = 3600
    lab.pool.quota_limit = 1800
    lab.pool.save()
    running = book(student_client, start=0, end=20).json()
    frozen.move_to(NOW + timedelta(minutes=15))
    student_client.post(f"/api/v1/bookings/{running['id']}/cancel/")
    # 15 minutes used; 15 more fit in the hour, 20 would not
    assert_error(book(student_client, start=16, end=36), 422, "quota_exceeded")
    assert book(student_client, start=16, end=31).status_code == 201


@pytest.mark.parametrize("change", [{"available": False}, {"public": False}])
def test_it_refuses_an_unavailable_or_hidden_experiment(student_client, lab, change):
    for field, value in change.items():
        setattr(lab.pend00, field, value)
    lab.pend00.save()
    assert_error(book(student_client, experiment="pend00"), 422, "experiment_unavailable")


def test_a_maintainer_may_book_their_unavailable_or_hidden_experiment(lab):
    lab.hidden.available = False
    lab.hidden.save()
    response = book(client_for(lab.maintainer), experiment="dev00")
    assert response.status_code == 201
    assert_error(
        book(client_for(lab.student), start=20, end=30, experiment="dev00"),
        422,
        "experiment_unavailable",
    )


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"pool": "nope", "start": at(0), "end": at(10)}, 422),
        ({"pool": "pendulums", "experiment": "spin00", "start": at(0), "end": at(10)}, 422),
        ({"pool": "pendulums", "experiment": "nope", "start": at(0), "end": at(10)}, 422),
        ({"pool": "pendulums", "start": "2026-03-02T09:00:00", "end": at(10)}, 400),
        ({"pool": "pendulums", "start": at(10), "end": at(0)}, 400),
        ({"pool": "pendulums", "start": at(10), "end": at(10)}, 400),
        ({"pool": "pendulums", "start": "tomorrow", "end": at(10)}, 400),
        ({"pool": "pendulums", "start": 1767261600, "end": at(10)}, 400),
        ({"pool": "pendulums", "start": at(0), "end": "9999-12-31T23:59:59Z"}, 400),
        ({"pool": "pendulums", "start": "0001-01-01T00:00:00Z", "end": at(10)}, 400),
        ({"pool": 7, "start": at(0), "end": at(10)}, 400),
        ({"pool": ["pendulums"], "start": at(0), "end": at(10)}, 400),
        ({"pool": "pendulums", "experiment": 3, "start": at(0), "end": at(10)}, 400),
        ({"pool": "pendulums", "start": at(0)}, 400),
        ({"pool": "x" * 5000, "start": at(0), "end": at(10)}, 400),
        ({}, 400),
    ],
)
def test_bad_input_gets_a_code_and_writes_nothing(student_client, body, status):
    response = student_client.post("/api/v1/bookings/", body, content_type="application/json")
    assert_error(response, status, "invalid")
    assert Booking.objects.count() == 0


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        ("{not json", "application/json"),
        ("[]", "application/json"),
        ('"pool"', "application/json"),
        ("null", "application/json"),
        ("pool=pendulums", "application/x-www-form-urlencoded"),
        ("\xff\xfe", "application/json"),
    ],
)
def test_garbage_bodies_are_400_invalid(student_client, raw, content_type):
    response = student_client.post("/api/v1/bookings/", raw, content_type=content_type)
    assert_error(response, 400, "invalid")
    assert Booking.objects.count() == 0


def test_it_needs_a_login(client, lab):
    assert_error(client.get("/api/v1/bookings/"), 401, "not_authenticated")
    assert_error(book(client), 401, "not_authenticated")
    assert_error(client.get("/api/v1/pools/"), 401, "not_authenticated")


def test_the_browser_api_checks_csrf(lab):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(lab.student)
    response = book(client)
    assert response.status_code == 403
    assert Booking.objects.count() == 0
    client.get("/api/v1/pools/")  # no token yet: the login page would set it
    client.cookies.load({"csrftoken": "a" * 32})
    response = client.post(
        "/api/v1/bookings/",
        json.dumps({"pool": "pendulums", "start": at(0), "end": at(10)}),
        content_type="application/json",
        HTTP_X_CSRFTOKEN="a" * 32,
    )
    assert response.status_code == 201


@pytest.mark.parametrize("action", ["detail", "cancel", "extend"])
def test_another_users_booking_is_not_found(student_client, student2_client, action, frozen):
    booking = book(student_client, start=0, end=10).json()
    frozen.move_to(NOW + timedelta(minutes=1))
    url = f"/api/v1/bookings/{booking['id']}/"
    if action == "detail":
        response = student2_client.get(url)
    else:
        response = student2_client.post(url + f"{action}/", {}, content_type="application/json")
    assert_error(response, 404, "not_found")
    stored = Booking.objects.get(pk=booking["id"])
    assert stored.status == "booked" and stored.end == NOW + timedelta(minutes=10)


def test_an_unknown_or_malformed_booking_id_is_404(student_client):
    assert_error(student_client.get("/api/v1/bookings/not-a-uuid/"), 404, "not_found")
    missing = "00000000-0000-4000-8000-000000000000"
    assert_error(student_client.get(f"/api/v1/bookings/{missing}/"), 404, "not_found")
    assert_error(student_client.post(f"/api/v1/bookings/{missing}/cancel/"), 404, "not_found")


def test_cancel_is_idempotent(student_client):
    booking = book(student_client).json()
    first = student_client.post(f"/api/v1/bookings/{booking['id']}/cancel/")
    second = student_client.post(f"/api/v1/bookings/{booking['id']}/cancel/")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert first.json()["status"] == "cancelled"
    assert first.json()["cancelled_by"] == "user"
    assert student_client.get("/api/v1/bookings/").json() == []
    past = student_client.get("/api/v1/bookings/?include=past").json()
    assert [b["status"] for b in past] == ["cancelled"]


class TestExtend:
    def extend(self, client, booking_id, **body):
        return client.post(
            f"/api/v1/bookings/{booking_id}/extend/", body, content_type="application/json"
        )

    def test_it_extends_a_running_booking_by_the_step(self, student_client, frozen):
        booking = book(student_client, start=0, end=10).json()
        frozen.move_to(NOW + timedelta(minutes=2))
        response = self.extend(student_client, booking["id"])
        assert response.status_code == 200
        assert response.json()["end"] == at(15)
        response = self.extend(student_client, booking["id"], minutes=10)
        assert response.json()["end"] == at(25)
        assert response.json()["booked_end"] == at(10)

    def test_it_stops_at_the_maximum_extension(self, student_client, frozen):
        booking = book(student_client, start=0, end=10).json()
        frozen.move_to(NOW + timedelta(minutes=2))
        assert self.extend(student_client, booking["id"], minutes=15).status_code == 200
        assert_error(self.extend(student_client, booking["id"]), 422, "extension_limit")

    def test_max_duration_does_not_limit_an_extension(self, student_client, frozen):
        booking = book(student_client, start=0, end=30).json()
        frozen.move_to(NOW + timedelta(minutes=2))
        assert self.extend(student_client, booking["id"], minutes=15).json()["end"] == at(45)

    def test_the_next_booking_blocks_it(self, student_client, student2_client, frozen):
        booking = book(student_client, start=0, end=10).json()
        assert book(student2_client, start=20, end=30).status_code == 201
        frozen.move_to(NOW + timedelta(minutes=2))
        assert self.extend(student_client, booking["id"], minutes=10).status_code == 200
        assert_error(self.extend(student_client, booking["id"]), 409, "extension_blocked")

    def test_it_needs_a_current_booking(self, student_client, frozen):
        booking = book(student_client, start=10, end=20).json()
        assert_error(self.extend(student_client, booking["id"]), 409, "not_started_yet")
        frozen.move_to(NOW + timedelta(minutes=21))
        assert_error(self.extend(student_client, booking["id"]), 409, "booking_over")

    def test_it_refuses_a_cancelled_booking(self, student_client, frozen):
        booking = book(student_client, start=0, end=10).json()
        student_client.post(f"/api/v1/bookings/{booking['id']}/cancel/")
        assert_error(self.extend(student_client, booking["id"]), 409, "booking_over")

    @pytest.mark.parametrize("minutes", [3, 0, -5, "5", 1.5, True, 100000])
    def test_bad_minutes_are_400(self, student_client, minutes, frozen):
        booking = book(student_client, start=0, end=10).json()
        frozen.move_to(NOW + timedelta(minutes=1))
        assert_error(self.extend(student_client, booking["id"], minutes=minutes), 400, "invalid")
        assert Booking.objects.get(pk=booking["id"]).end == NOW + timedelta(minutes=10)

    def test_the_quota_applies(self, student_client, lab, frozen):
        lab.pool.quota_period = 3600
        lab.pool.quota_limit = 900
        lab.pool.save()
        booking = book(student_client, start=0, end=10).json()
        frozen.move_to(NOW + timedelta(minutes=1))
        assert self.extend(student_client, booking["id"]).status_code == 200
        assert_error(self.extend(student_client, booking["id"]), 422, "quota_exceeded")


def test_pools_lists_only_what_the_user_may_book(student_client, outsider_client, lab):
    pools = student_client.get("/api/v1/pools/").json()
    assert [p["slug"] for p in pools] == ["pendulums"]
    assert [e["slug"] for e in pools[0]["experiments"]] == ["pend00", "pend01"]
    assert pools[0]["policy"] == {
        "min_duration": 300,
        "max_duration": 1800,
        "book_ahead": 604800,
        "start_in_past": 120,
        "max_bookings": 2,
        "grace_period": 300,
        "extend_step": 300,
        "max_extension": 900,
        "quota": None,
    }
    assert outsider_client.get("/api/v1/pools/").json() == []
    maintainer_view = client_for(lab.maintainer).get("/api/v1/pools/").json()
    assert [e["slug"] for e in maintainer_view[0]["experiments"]] == ["dev00", "pend00", "pend01"]


class TestAvailability:
    url = "/api/v1/pools/pendulums/availability/"

    def test_it_shows_free_time_per_experiment_and_any(self, student_client, student2_client, lab):
        book(student_client, start=10, end=20, experiment="pend00")
        book(student2_client, start=15, end=25, experiment="pend01")
        body = student_client.get(self.url, {"from": at(0), "to": at(60)}).json()
        assert body["from"] == at(0) and body["to"] == at(60)
        assert body["experiments"]["pend00"] == [
            {"start": at(0), "end": at(10)},
            {"start": at(20), "end": at(60)},
        ]
        assert body["experiments"]["pend01"] == [
            {"start": at(0), "end": at(15)},
            {"start": at(25), "end": at(60)},
        ]
        assert "dev00" not in body["experiments"]
        # from 15 to 20 both are booked
        assert body["any"] == [{"start": at(0), "end": at(15)}, {"start": at(20), "end": at(60)}]

    def test_it_honours_windows_and_availability(self, student_client, lab):
        lab.pend01.available = False
        lab.pend01.save()
        make_window(lab.pool, "denied", NOW + timedelta(minutes=30), NOW + timedelta(minutes=40))
        body = student_client.get(self.url, {"from": at(0), "to": at(60)}).json()
        assert body["experiments"]["pend01"] == []
        assert body["any"] == [{"start": at(0), "end": at(30)}, {"start": at(40), "end": at(60)}]

    def test_it_does_not_offer_the_past(self, student_client):
        body = student_client.get(self.url, {"from": at(-60), "to": at(60)}).json()
        assert body["any"] == [{"start": at(0), "end": at(60)}]

    @pytest.mark.parametrize(
        "params",
        [
            {"from": "yesterday"},
            {"from": "2026-03-02T09:00:00"},
            {"from": at(60), "to": at(0)},
            {"from": at(0), "to": at(60 * 24 * 40)},
        ],
    )
    def test_bad_ranges_are_400(self, student_client, params):
        assert_error(student_client.get(self.url, params), 400, "invalid")

    def test_it_is_for_members(self, outsider_client, student_client):
        assert_error(outsider_client.get(self.url), 403, "not_member")
        assert_error(student_client.get("/api/v1/pools/nope/availability/"), 404, "not_found")


class TestJoin:
    def test_it_joins_a_group_with_its_code(self, outsider_client, lab):
        from booking.services import group_access_code_rotate

        code = group_access_code_rotate(group=lab.group, now=NOW)
        assert lab.group.access_code_hash != code
        response = outsider_client.post(
            "/api/v1/groups/join/", {"code": code}, content_type="application/json"
        )
        assert response.status_code == 200
        assert response.json() == {"slug": "course-x", "title": "Course-X", "pools": ["pendulums"]}
        assert book(outsider_client).status_code == 201

    def test_a_bad_code_is_404(self, outsider_client, lab):
        response = outsider_client.post(
            "/api/v1/groups/join/", {"code": "guess"}, content_type="application/json"
        )
        assert_error(response, 404, "not_found")
        assert response.json()["detail"] == MESSAGES["bad_access_code"]
        assert not lab.group.members.filter(pk=lab.outsider.pk).exists()

    def test_an_expired_or_used_up_code_is_refused(self, lab):
        from booking.services import group_access_code_rotate

        code = group_access_code_rotate(group=lab.group, now=NOW, max_uses=1)
        first = client_for(lab.outsider).post(
            "/api/v1/groups/join/", {"code": code}, content_type="application/json"
        )
        assert first.status_code == 200
        from tests.factories import make_user

        late = client_for(make_user("late"))
        again = late.post("/api/v1/groups/join/", {"code": code}, content_type="application/json")
        assert_error(again, 404, "not_found")
        code = group_access_code_rotate(
            group=lab.group, now=NOW, expires_at=NOW - timedelta(seconds=1)
        )
        expired = late.post("/api/v1/groups/join/", {"code": code}, content_type="application/json")
        assert_error(expired, 404, "not_found")

    def test_guessing_is_throttled(self, outsider_client, settings):
        from django.core.cache import caches

        caches["throttle"].clear()
        statuses = [
            outsider_client.post(
                "/api/v1/groups/join/", {"code": f"g{i}"}, content_type="application/json"
            ).status_code
            for i in range(25)
        ]
        assert statuses[:20] == [404] * 20
        assert statuses[-1] == 429
        caches["throttle"].clear()


class TestLookup:
    url = "/api/v1/bookings/lookup/"

    def test_it_finds_a_booking_by_reference_and_last_name(self, student_client, client):
        booking = book(student_client).json()
        body = {"reference": booking["reference"].lower(), "last_name": " student "}
        response = client.post(self.url, body, content_type="application/json")
        assert response.status_code == 200
        assert response.json()["id"] == booking["id"]

    @pytest.mark.parametrize("last_name", ["Other", "Stud", "Student Smith"])
    def test_a_wrong_name_is_404(self, student_client, client, last_name):
        booking = book(student_client).json()
        body = {"reference": booking["reference"], "last_name": last_name}
        assert_error(client.post(self.url, body, content_type="application/json"), 404, "not_found")

    def test_it_is_throttled(self, client, lab):
        from django.core.cache import caches

        caches["throttle"].clear()
        body = {"reference": "ABCDEF", "last_name": "x"}
        statuses = [
            client.post(self.url, body, content_type="application/json").status_code
            for _ in range(21)
        ]
        assert statuses[-1] == 429
        assert statuses[0] == 404
        caches["throttle"].clear()


def test_the_sweep_releases_no_shows_and_ends_bookings(lab, frozen):
    from booking.services import booking_sweep

    late = make_booking(lab.student, lab.pool, lab.pend00, NOW - timedelta(minutes=6), minutes=20)
    grace = make_booking(lab.student2, lab.pool, lab.pend01, NOW - timedelta(minutes=4), minutes=20)
    running = make_booking(
        lab.maintainer,
        lab.pool,
        lab.hidden,
        NOW - timedelta(minutes=30),
        minutes=20,
        status=BookingStatus.STARTED,
    )
    assert booking_sweep(now=NOW) == {"no_show": 1, "ended": 1}
    assert booking_sweep(now=NOW) == {"no_show": 0, "ended": 0}
    late.refresh_from_db()
    grace.refresh_from_db()
    running.refresh_from_db()
    assert (late.status, grace.status, running.status) == ("no_show", "booked", "ended")


def test_a_no_show_counts_against_the_quota_and_frees_the_experiment(
    lab, student_client, student2_client, frozen
):
    from booking.services import booking_sweep

    lab.pool.quota_period = 3600
    lab.pool.quota_limit = 1200
    lab.pool.save()
    booking = book(student_client, start=0, end=20).json()
    frozen.move_to(NOW + timedelta(minutes=6))
    booking_sweep(now=NOW + timedelta(minutes=6))
    assert Booking.objects.get(pk=booking["id"]).status == "no_show"
    assert book(student2_client, start=7, end=17).status_code == 201
    assert_error(book(student_client, start=30, end=40, experiment="pend01"), 422, "quota_exceeded")
