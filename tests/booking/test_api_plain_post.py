"""The booking POST's plain path (booking/apis.py `plain_booking_post`): for every request,
the same answer as DRF's own dispatch, and DRF's dispatch for everything but the plain case."""

import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import InterfaceError, OperationalError
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.settings import api_settings
from rest_framework.test import APIClient
from rest_framework.views import APIView

from booking.apis import BookingListCreateApi
from booking.models import Booking
from booking.negotiation import AnyFirstNegotiation
from booking.parsers import StrictJSONParser
from tests.conftest import NOW, client_for
from tests.factories import make_booking
from web.login_sessions import SessionStore

pytestmark = pytest.mark.usefixtures("frozen")

URL = "/api/v1/bookings/"


def at(minutes: float) -> str:
    return (NOW + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def body(**changes) -> dict:
    return {"pool": "pendulums", "experiment": "pend00", "start": at(5), "end": at(20)} | changes


def as_json(value) -> bytes:
    return json.dumps(value).encode()


def csrf_client(user: User, *, token: bool) -> Client:
    """A browser's client: the CSRF check enforced, with or without the cookie's token in the
    header."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    secret = _get_new_csrf_string()
    client.cookies[settings.CSRF_COOKIE_NAME] = secret
    if token:
        client.defaults["HTTP_X_CSRFTOKEN"] = secret
    return client


# (name, who sends it, body bytes, extra request arguments, whether the plain path answers)
CASES = [
    ("booked", "student", as_json(body()), {}, True),
    ("any experiment", "student", as_json(body(experiment=None)), {}, True),
    ("slot taken", "student2", as_json(body()), {}, True),
    ("unknown pool", "student", as_json(body(pool="nope")), {}, True),
    ("unknown experiment", "student", as_json(body(experiment="nope")), {}, True),
    ("not a member", "outsider", as_json(body()), {}, True),
    ("too long", "student", as_json(body(end=at(500))), {}, True),
    ("in the past", "student", as_json(body(start=at(-60), end=at(-30))), {}, True),
    ("unicode pool", "student", as_json(body(pool="pendulé")), {}, True),
    ("with a CSRF token", "csrf", as_json(body()), {}, True),
    ("end before start", "student", as_json(body(end=at(1))), {}, False),
    ("naive time", "student", as_json(body(start="2026-03-02T09:05:00")), {}, False),
    ("wrong type", "student", as_json(body(pool=5)), {}, False),
    ("a list", "student", as_json([body()]), {}, False),
    ("null", "student", b"null", {}, False),
    ("NaN", "student", b'{"pool": NaN}', {}, False),
    ("garbage", "student", b'{"pool": ', {}, False),
    ("not UTF-8", "student", b'{"pool": "\xff"}', {}, False),
    ("nested deep", "student", b"[" * 100_000, {}, False),
    ("empty", "student", b"", {}, False),
    ("anonymous", "anonymous", as_json(body()), {}, False),
    ("no CSRF token", "csrf-missing", as_json(body()), {}, False),
    (
        "a charset",
        "student",
        as_json(body()),
        {"content_type": "application/json; charset=utf-8"},
        False,
    ),
    ("text", "student", as_json(body()), {"content_type": "text/plain"}, False),
    (
        "a form",
        "student",
        b"pool=pendulums",
        {"content_type": "application/x-www-form-urlencoded"},
        False,
    ),
    ("accept json", "student", as_json(body()), {"HTTP_ACCEPT": "application/json"}, False),
    ("accept html", "student", as_json(body()), {"HTTP_ACCEPT": "text/html"}, False),
    ("a format", "student", as_json(body()), {"QUERY_STRING": "format=json"}, False),
]


@pytest.fixture
def drf_dispatches(monkeypatch):
    """How many times DRF's own dispatch ran its checks (APIView.initial)."""
    calls = []
    initial = APIView.initial

    def counted(self, request, *args, **kwargs):
        calls.append(type(self))
        return initial(self, request, *args, **kwargs)

    monkeypatch.setattr(APIView, "initial", counted)
    return calls


def send(lab, who: str, content: bytes, extra: dict):
    clients = {
        "student": lambda: client_for(lab.student),
        "student2": lambda: client_for(lab.student2),
        "outsider": lambda: client_for(lab.outsider),
        "anonymous": Client,
        "csrf": lambda: csrf_client(lab.student, token=True),
        "csrf-missing": lambda: csrf_client(lab.student, token=False),
    }
    arguments = {"content_type": "application/json"} | extra
    content_type = arguments.pop("content_type")
    return clients[who]().generic("POST", URL, content, content_type=content_type, **arguments)


def answer(response) -> tuple:
    """Status, headers and body, with what a new booking makes up (its id and reference)
    replaced: the same for two answers that differ only by those."""
    content = response.content
    if response.status_code == 201:
        made = response.json()
        content = content.replace(made["id"].encode(), b"ID").replace(
            made["reference"].encode(), b"REF"
        )
    headers = {name: value for name, value in response.headers.items() if name != "Set-Cookie"}
    return response.status_code, headers, content


@pytest.mark.parametrize(
    ("name", "who", "content", "extra", "plain"), CASES, ids=[c[0] for c in CASES]
)
def test_the_plain_path_answers_as_drf_and_takes_only_the_plain_case(
    lab, monkeypatch, drf_dispatches, name, who, content, extra, plain
):
    make_booking(lab.student, lab.pool, lab.pend00, NOW + timedelta(minutes=60))
    if who == "student2":  # the slot is taken
        make_booking(lab.student, lab.pool, lab.pend00, NOW + timedelta(minutes=10), minutes=5)
    if name == "any experiment":  # one free experiment: both answers name the same
        make_booking(lab.maintainer, lab.pool, lab.pend01, NOW + timedelta(minutes=10), minutes=5)
    answers, written = [], []
    for plain_post in (True, False):
        monkeypatch.setattr(BookingListCreateApi, "plain_post", plain_post)
        before = set(Booking.objects.values_list("pk", flat=True))
        drf_dispatches.clear()
        answers.append(answer(send(lab, who, content, extra)))
        took_drf = BookingListCreateApi in drf_dispatches
        assert took_drf is (not plain_post or not plain), name
        made = Booking.objects.exclude(pk__in=before)
        written.append(
            list(made.values_list("user", "pool", "experiment", "start", "end", "status"))
        )
        made.delete()
    assert answers[0] == answers[1]
    assert written[0] == written[1]
    assert (answers[0][0] == 201) is bool(written[0])


def test_a_session_that_cannot_be_read_is_answered_as_drf_answers_it(lab, monkeypatch):
    # The database unreachable when the login session is read (the first query of a
    # request): DRF's authentication fails there, and the answer is 503 server_busy.
    client = client_for(lab.student)

    def unreachable(self):
        raise OperationalError("the database is unreachable")

    monkeypatch.setattr(SessionStore, "load", unreachable)
    answers = []
    for plain_post in (True, False):
        monkeypatch.setattr(BookingListCreateApi, "plain_post", plain_post)
        answers.append(answer(client.post(URL, body(), content_type="application/json")))
    assert answers[0] == answers[1]
    status, headers, content = answers[0]
    assert status == 503 and headers["Retry-After"] == "1"
    assert json.loads(content)["code"] == "server_busy"
    assert not Booking.objects.exists()


def test_an_unexpected_failure_reading_the_session_is_raised_as_drf_raises_it(lab, monkeypatch):
    client = client_for(lab.student)

    def broken(self):
        raise InterfaceError("the connection is in a state nobody expected")

    monkeypatch.setattr(SessionStore, "load", broken)
    for plain_post in (True, False):
        monkeypatch.setattr(BookingListCreateApi, "plain_post", plain_post)
        with pytest.raises(InterfaceError):
            client.post(URL, body(), content_type="application/json")


def test_a_user_forced_by_drfs_test_client_books_as_drf_would(lab, monkeypatch, drf_dispatches):
    # DRF's test client can name a user for DRF's authentication alone; the session's user
    # is then not the one who books.
    client = APIClient()
    client.force_login(lab.student)
    client.force_authenticate(lab.student2)
    answers = []
    for plain_post in (True, False):
        monkeypatch.setattr(BookingListCreateApi, "plain_post", plain_post)
        response = client.post(URL, body(), format="json")
        answers.append(answer(response))
        assert Booking.objects.get(pk=response.json()["id"]).user == lab.student2
        Booking.objects.all().delete()
    assert answers[0] == answers[1]
    assert drf_dispatches == [BookingListCreateApi, BookingListCreateApi]


def test_the_view_is_configured_as_the_plain_path_assumes():
    view = BookingListCreateApi
    assert view.authentication_classes == [SessionAuthentication]
    assert view.permission_classes == [IsAuthenticated]
    assert view.throttle_classes == []
    assert view.parser_classes == [StrictJSONParser]
    assert view.renderer_classes == [JSONRenderer]
    assert view.content_negotiation_class is AnyFirstNegotiation
    assert view.versioning_class is None
    assert StrictJSONParser.strict is True
    assert "*" not in JSONRenderer.media_type
    assert api_settings.URL_FORMAT_OVERRIDE == "format"
    assert settings.DEFAULT_CHARSET == "utf-8"
