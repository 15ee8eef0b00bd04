"""Starting sessions, the bearer endpoints, extension hand-over, subsets, revocation."""

import json
from datetime import timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
import pytest

from booking.models import UI, AuditEntry, Booking, UISet
from relay_control.models import Revocation, RevocationDelivery
from sessions_app.models import IssuedToken, Session
from tests.booking.test_api_bookings import assert_error, at, book
from tests.conftest import NOW, RELAY_SECRET
from tests.factories import make_relay

pytestmark = pytest.mark.usefixtures("frozen")


def decode_like_practable(token: str, audience: str) -> dict:
    """What an unmodified practable relay does: HS256, its secret, aud contains its own."""
    claims = jwt.decode(
        token,
        RELAY_SECRET,
        algorithms=["HS256"],
        audience=audience,
        options={"require": ["exp", "nbf", "iat", "aud"]},
    )
    assert isinstance(claims["booking_id"], str) and claims["booking_id"]
    assert claims["topic"] and claims["prefix"] and claims["scopes"]
    return claims


@pytest.fixture
def running(student_client, lab, frozen):
    """A booking that started a minute ago, and its started session."""
    booking = book(student_client, start=0, end=10).json()
    frozen.move_to(NOW + timedelta(minutes=1))
    response = student_client.post(f"/api/v1/bookings/{booking['id']}/session/")
    assert response.status_code == 201, response.content
    return booking, response.json()


def bearer(client, method: str, path: str, code: str, body: dict | None = None):
    kwargs = {"HTTP_AUTHORIZATION": f"Bearer {code}"}
    if method == "get":
        return client.get(path, **kwargs)
    return client.post(path, body or {}, content_type="application/json", **kwargs)


def test_a_session_carries_practable_stream_tokens(running, lab, settings):
    booking, state = running
    assert state["status"] == "started" and state["end"] == booking["end"]
    assert [s["for"] for s in state["streams"]] == ["data", "video"]
    for stream in state["streams"]:
        assert stream["url"] == f"{lab.relay.access_url}/session/pend00-{stream['for']}"
        assert stream["audience"] == lab.relay.access_url
        assert stream["connection_type"] == "session"
        claims = decode_like_practable(stream["token"], lab.relay.access_url)
        assert claims["booking_id"] == booking["id"]
        assert claims["topic"] == stream["topic"] == f"pend00-{stream['for']}"
        assert claims["prefix"] == "session"
        assert claims["aud"] == [lab.relay.access_url]
        assert claims["iss"] == settings.PLATFORM_URL
        assert claims["exp"] == int((NOW + timedelta(minutes=10)).timestamp())
        assert claims["iat"] == claims["nbf"] == int((NOW + timedelta(minutes=1)).timestamp())
        assert claims["scopes"] == (["read", "write"] if stream["for"] == "data" else ["read"])
        assert len(claims["jti"]) >= 32
        # pseudonymous: neither name, username, e-mail nor database id
        for private in ("student", "Sam", "sam@example.org"):
            assert private not in claims["sub"]
        assert claims["sub"] != str(lab.student.pk) and len(claims["sub"]) == 32
        assert jwt.get_unverified_header(stream["token"])["alg"] == "HS256"
    assert Booking.objects.get(pk=booking["id"]).status == "started"


def test_the_session_code_is_opaque_and_stored_only_as_a_hash(running):
    booking, state = running
    code = state["session"]
    assert len(code) >= 40 and set(code) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
    )
    session = Session.objects.get(booking_id=booking["id"])
    stored = json.dumps(list(Session.objects.values().filter(pk=session.pk)), default=str)
    assert code not in stored
    assert code not in json.dumps(list(AuditEntry.objects.values()), default=str)
    for stream in state["streams"]:
        assert stream["token"] not in json.dumps(list(AuditEntry.objects.values()), default=str)


def test_starting_again_returns_the_same_session(running, student_client):
    booking, state = running
    again = student_client.post(f"/api/v1/bookings/{booking['id']}/session/")
    assert again.status_code == 201
    assert again.json()["session"] == state["session"]
    assert Session.objects.count() == 1


def test_too_early_and_over(student_client, frozen):
    booking = book(student_client, start=5, end=15).json()
    url = f"/api/v1/bookings/{booking['id']}/session/"
    assert_error(student_client.post(url), 409, "not_started_yet")
    frozen.move_to(NOW + timedelta(minutes=16))
    assert_error(student_client.post(url), 409, "booking_over")
    cancelled = book(student_client, start=20, end=30).json()
    student_client.post(f"/api/v1/bookings/{cancelled['id']}/cancel/")
    frozen.move_to(NOW + timedelta(minutes=21))
    assert_error(
        student_client.post(f"/api/v1/bookings/{cancelled['id']}/session/"), 409, "booking_over"
    )


def test_another_users_booking_cannot_be_started(running, student2_client):
    booking, _ = running
    assert_error(
        student2_client.post(f"/api/v1/bookings/{booking['id']}/session/"), 404, "not_found"
    )


def test_the_bearer_code_reads_the_session_with_fresh_tokens(running, client, lab):
    booking, state = running
    response = bearer(client, "get", "/api/v1/session/", state["session"])
    assert response.status_code == 200
    body = response.json()
    assert body["session"] == state["session"] and body["end"] == booking["end"]
    old = {
        jwt.decode(s["token"], options={"verify_signature": False})["jti"] for s in state["streams"]
    }
    new = {
        jwt.decode(s["token"], options={"verify_signature": False})["jti"] for s in body["streams"]
    }
    assert old.isdisjoint(new)
    assert IssuedToken.objects.count() == 4


@pytest.mark.parametrize(
    "credential",
    ["", "s_" + "A" * 43, "garbage", "Bearer", "r_" + "A" * 43],
)
def test_a_bad_code_is_401(running, client, credential):
    response = client.get("/api/v1/session/", HTTP_AUTHORIZATION=f"Bearer {credential}")
    assert_error(response, 401, "not_authenticated")


def test_a_stream_token_is_not_a_session_code(running, client):
    _, state = running
    token = state["streams"][0]["token"]
    assert_error(bearer(client, "get", "/api/v1/session/", token), 401, "not_authenticated")


def test_no_credential_is_401(client, lab):
    assert_error(client.get("/api/v1/session/"), 401, "not_authenticated")


def test_extension_hands_over_without_revoking(running, client, frozen):
    booking, state = running
    response = bearer(client, "post", "/api/v1/session/extend/", state["session"], {"minutes": 10})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["end"] == at(20)
    for stream in body["streams"]:
        claims = jwt.decode(stream["token"], options={"verify_signature": False})
        assert claims["exp"] == int((NOW + timedelta(minutes=20)).timestamp())
    assert Revocation.objects.count() == 0  # the old tokens stay valid until they expire
    # A reload after the original end but before the extended end still works.
    frozen.move_to(NOW + timedelta(minutes=15))
    reload = bearer(client, "get", "/api/v1/session/", state["session"])
    assert reload.status_code == 200 and reload.json()["end"] == at(20)
    frozen.move_to(NOW + timedelta(minutes=21))
    assert_error(bearer(client, "get", "/api/v1/session/", state["session"]), 410, "booking_over")


def test_the_booking_extend_endpoint_keeps_the_session(running, student_client, client):
    booking, state = running
    response = student_client.post(
        f"/api/v1/bookings/{booking['id']}/extend/", {}, content_type="application/json"
    )
    assert response.json()["end"] == at(15)
    assert bearer(client, "get", "/api/v1/session/", state["session"]).json()["end"] == at(15)


def test_cancel_revokes_every_relay_of_the_booking_once(running, client, lab):
    booking, state = running
    relay_b = make_relay("relay-b")
    stream = lab.pend00.streams.get(name="video")
    stream.relay = relay_b
    stream.save()
    first = bearer(client, "post", "/api/v1/session/cancel/", state["session"])
    second = bearer(client, "post", "/api/v1/session/cancel/", state["session"])
    assert first.status_code == second.status_code == 200
    assert first.json()["status"] == "cancelled"
    revocation = Revocation.objects.get()
    assert str(revocation.booking_id) == booking["id"]
    assert revocation.exp == NOW + timedelta(minutes=10)
    assert set(revocation.token_ids) == set(IssuedToken.objects.values_list("jti", flat=True))
    assert set(RevocationDelivery.objects.values_list("relay__slug", flat=True)) == {
        "relay-a",
        "relay-b",
    }
    assert_error(bearer(client, "get", "/api/v1/session/", state["session"]), 410, "booking_over")
    assert_error(
        bearer(client, "post", "/api/v1/session/extend/", state["session"]), 410, "booking_over"
    )
    assert AuditEntry.objects.filter(action="revocation.publish").count() == 1


def test_cancelling_before_the_start_records_no_revocation(student_client):
    booking = book(student_client, start=5, end=15).json()
    student_client.post(f"/api/v1/bookings/{booking['id']}/cancel/")
    assert Revocation.objects.count() == 0


def test_revocation_seq_increases(running, student2_client, lab, frozen, client):
    _, state = running
    other = book(student2_client, start=1, end=11, experiment="pend01").json()
    other_state = student2_client.post(f"/api/v1/bookings/{other['id']}/session/").json()
    bearer(client, "post", "/api/v1/session/cancel/", state["session"])
    bearer(client, "post", "/api/v1/session/cancel/", other_state["session"])
    assert list(Revocation.objects.order_by("pk").values_list("seq", flat=True)) == [1, 2]


class TestSubset:
    def subset(self, client, code, **body):
        return bearer(client, "post", "/api/v1/session/subset/", code, body)

    def test_it_issues_narrower_tokens_that_die_with_the_booking(self, running, client, lab):
        booking, state = running
        response = self.subset(client, state["session"], streams=["data"], scopes=["read"], ttl=60)
        assert response.status_code == 201, response.content
        (stream,) = response.json()["streams"]
        claims = decode_like_practable(stream["token"], lab.relay.access_url)
        assert stream["for"] == "data" and claims["scopes"] == ["read"]
        assert claims["booking_id"] == booking["id"]
        assert claims["exp"] == int((NOW + timedelta(minutes=2)).timestamp())

    def test_it_never_outlives_the_booking(self, running, client):
        _, state = running
        response = self.subset(
            client, state["session"], streams=["video"], scopes=["read"], ttl=86400
        )
        claims = jwt.decode(
            response.json()["streams"][0]["token"], options={"verify_signature": False}
        )
        assert claims["exp"] == int((NOW + timedelta(minutes=10)).timestamp())

    @pytest.mark.parametrize(
        "body",
        [
            {"streams": ["video"], "scopes": ["write"]},
            {"streams": ["data"], "scopes": ["read", "admin"]},
            {"streams": ["audio"], "scopes": ["read"]},
            {"streams": [], "scopes": ["read"]},
            {"streams": ["data"], "scopes": []},
        ],
    )
    def test_it_cannot_widen(self, running, client, body):
        _, state = running
        assert_error(self.subset(client, state["session"], **body), 422, "invalid")

    @pytest.mark.parametrize(
        "body",
        [
            {"streams": "data", "scopes": ["read"]},
            {"streams": ["data"], "scopes": ["read"], "ttl": "60"},
            {},
        ],
    )
    def test_bad_input_is_400(self, running, client, body):
        _, state = running
        assert_error(self.subset(client, state["session"], **body), 400, "invalid")


def test_ui_links_are_filled_in(student_client, lab, frozen):
    ui = UI.objects.create(
        slug="pend-ui",
        title="Pendulum UI",
        url="https://ui.example.org/p/?s={{session}}&streams={{streams}}&exp={{exp}}",
        streams=["data"],
    )
    ui_set = UISet.objects.create(slug="pend")
    ui_set.uis.add(ui)
    lab.pool.ui_set = ui_set
    lab.pool.save()
    booking = book(student_client, start=0, end=10).json()
    frozen.move_to(NOW + timedelta(minutes=1))
    state = student_client.post(f"/api/v1/bookings/{booking['id']}/session/").json()
    (link,) = state["uis"]
    assert link["title"] == "Pendulum UI"
    query = parse_qs(urlsplit(link["url"]).query)
    assert query["s"] == [state["session"]]
    assert query["exp"] == [str(int((NOW + timedelta(minutes=10)).timestamp()))]
    streams = json.loads(unquote(query["streams"][0]))
    assert [s["for"] for s in streams] == ["data"]
    # a group's own UI set overrides the pool's
    other = UISet.objects.create(slug="other")
    other.uis.add(
        UI.objects.create(slug="alt", title="Alt", url="https://alt.example.org/{{session}}")
    )
    lab.group.ui_set = other
    lab.group.save()
    state = student_client.post(f"/api/v1/bookings/{booking['id']}/session/").json()
    assert state["uis"] == [{"title": "Alt", "url": f"https://alt.example.org/{state['session']}"}]


def test_a_missing_relay_secret_is_a_clear_503(student_client, monkeypatch, frozen):
    monkeypatch.delenv("RELAY_TEST_SECRET")
    booking = book(student_client, start=0, end=10).json()
    frozen.move_to(NOW + timedelta(minutes=1))
    response = student_client.post(f"/api/v1/bookings/{booking['id']}/session/")
    assert_error(response, 503, "relay_unavailable")
    assert not Session.objects.exists()


def test_the_secret_is_read_at_signing_time(running, client, lab, monkeypatch, tmp_path):
    _, state = running
    secret_file = tmp_path / "secret"
    secret_file.write_text("rotated-secret-value-0123456789abcdef\n")
    lab.relay.secret_file = str(secret_file)
    lab.relay.save()
    body = bearer(client, "get", "/api/v1/session/", state["session"]).json()
    jwt.decode(
        body["streams"][0]["token"],
        "rotated-secret-value-0123456789abcdef",
        algorithms=["HS256"],
        audience=lab.relay.access_url,
    )
    secret_file.write_text("rotated-again-0123456789abcdef-0123456")
    body = bearer(client, "get", "/api/v1/session/", state["session"]).json()
    jwt.decode(
        body["streams"][0]["token"],
        "rotated-again-0123456789abcdef-0123456",
        algorithms=["HS256"],
        audience=lab.relay.access_url,
    )


def test_disabling_a_user_cancels_and_revokes(running, lab, student_client):
    from workflows.actions import user_disable_action

    booking, _ = running
    future = book(student_client, start=100, end=110).json()
    assert user_disable_action(user=lab.student, by=None, now=NOW + timedelta(minutes=1)) == 2
    assert set(
        Booking.objects.filter(pk__in=[booking["id"], future["id"]]).values_list(
            "status", flat=True
        )
    ) == {"cancelled"}
    assert [str(r.booking_id) for r in Revocation.objects.all()] == [booking["id"]]
    lab.student.refresh_from_db()
    assert not lab.student.is_active


def test_audit_records_start_issue_extend_subset_revoke(running, client):
    _, state = running
    bearer(client, "post", "/api/v1/session/extend/", state["session"])
    bearer(
        client,
        "post",
        "/api/v1/session/subset/",
        state["session"],
        {"streams": ["data"], "scopes": ["read"]},
    )
    bearer(client, "post", "/api/v1/session/cancel/", state["session"])
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {
        "session.start",
        "token.issue.stream",
        "booking.extend",
        "token.issue.subset",
        "booking.cancel",
        "revocation.publish",
    } <= actions


def test_a_long_staff_reason_is_kept_short_in_the_deny_list(running, lab):
    from workflows.actions import booking_staff_cancel_action

    booking, _ = running
    reason = "The pendulum's encoder failed during the morning run; " * 5
    booking_staff_cancel_action(
        booking=Booking.objects.get(pk=booking["id"]),
        by=lab.maintainer,
        reason=reason,
        now=NOW + timedelta(minutes=2),
    )
    revocation = Revocation.objects.get()
    assert revocation.reason == reason[:64]
    assert Booking.objects.get(pk=booking["id"]).cancel_reason == reason[:300]
