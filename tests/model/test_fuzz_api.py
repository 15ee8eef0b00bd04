"""Fuzzing every operation of the OpenAPI document (/api/v1/schema/) with schemathesis.

Requests go to the WSGI application (config.wsgi.application) in-process. Callers are
mostly the valid ones (a student's browser: session cookie and CSRF header; a live
session's code as bearer for /session/ endpoints; a relay API token for the feed), now and
then an outsider, nobody, a cancelled session or a wrong token. Cases come from the schema,
valid ones and (for robustness) invalid ones, and most of their values are swapped for real
ones (the pool, its experiments, the student's own and others' bookings, times around now)
so that the fuzz gets past "not found". Each case runs in a savepoint that is rolled back,
so every case meets the same lab.

Checks: no 5xx; every status is documented for its operation; the content type and the
body match the schema of that status.

PROOF_FUZZ_EXAMPLES raises the number of cases per operation (benchmarks/proof.py does).
"""

import json
import os
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections, transaction
from django.test import Client
from django.utils import timezone
from django.utils.crypto import get_random_string
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from booking.services import group_access_code_rotate
from relay_control.api_tokens import relay_token_create
from tests.factories import make_booking, make_group
from tests.model.test_stateful import write_stats
from workflows.actions import booking_cancel_action, session_start_action

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("PROOF_FUZZ_EXAMPLES", "12"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
SCHEMA_PATH = "/api/v1/schema/"
OPERATIONS = [
    ("GET", "/api/v1/pools/"),
    ("GET", "/api/v1/pools/{slug}/availability/"),
    ("POST", "/api/v1/groups/join/"),
    ("GET", "/api/v1/bookings/"),
    ("POST", "/api/v1/bookings/"),
    ("GET", "/api/v1/bookings/{booking_id}/"),
    ("POST", "/api/v1/bookings/{booking_id}/cancel/"),
    ("POST", "/api/v1/bookings/{booking_id}/extend/"),
    ("POST", "/api/v1/bookings/{booking_id}/session/"),
    ("POST", "/api/v1/bookings/lookup/"),
    ("GET", "/api/v1/session/"),
    ("POST", "/api/v1/session/cancel/"),
    ("POST", "/api/v1/session/extend/"),
    ("POST", "/api/v1/session/subset/"),
    ("GET", "/api/v1/session/events/"),
    ("POST", "/api/v1/session/survey/"),
    ("GET", "/api/v1/relay/revocations/"),
]
STATS: Counter = Counter()


@pytest.fixture
def in_process_app():
    """config.wsgi.application on the test database.

    Django closes the connection at each request's start and end; inside the test's
    transaction that would throw the test data away (its test client does the same).
    """
    from config.wsgi import application

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield application
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@dataclass
class Credentials:
    # (cookies, headers): the student, an outsider, nobody, the student without CSRF header
    browsers: list[tuple[dict, dict]]
    sessions: list[dict]  # bearer headers: a live session, a cancelled one, a wrong code
    relays: list[dict]  # bearer headers: a relay API token, a wrong one
    known: dict[str, list]  # real values to swap in


def logged_in(user) -> tuple[dict, dict]:
    browser = Client()
    browser.force_login(user)
    csrf = get_random_string(32)
    return {"sessionid": browser.cookies["sessionid"].value, "csrftoken": csrf}, {
        "X-CSRFToken": csrf
    }


def bearer(value: str) -> dict:
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture
def credentials(lab) -> Credentials:
    now = timezone.now()
    running = make_booking(lab.student, lab.pool, lab.pend00, now - timedelta(minutes=2))
    live = session_start_action(booking=running, by=lab.student, now=now)
    over = make_booking(lab.student2, lab.pool, lab.pend01, now - timedelta(minutes=1))
    gone = session_start_action(booking=over, by=lab.student2, now=now)
    booking_cancel_action(booking=over, by=lab.student2, now=now)
    future = make_booking(lab.student, lab.pool, lab.pend01, now + timedelta(hours=2))
    ended = make_booking(
        lab.student, lab.pool, lab.pend01, now - timedelta(hours=3), status="ended"
    )
    others = make_booking(lab.student2, lab.pool, lab.pend01, now + timedelta(hours=4))
    _, relay_token = relay_token_create(relay=lab.relay, now=now)
    open_day = make_group("open-day", [lab.other_pool], [])
    access_code = group_access_code_rotate(group=open_day, now=now)
    student = logged_in(lab.student)
    anonymous_csrf = get_random_string(32)
    return Credentials(
        browsers=[
            student,
            student,
            student,
            logged_in(lab.outsider),
            ({"csrftoken": anonymous_csrf}, {"X-CSRFToken": anonymous_csrf}),
            (student[0], {}),  # a page that lost its CSRF header
        ],
        sessions=[
            bearer(live.code),
            bearer(live.code),
            bearer(gone.code),
            bearer("s_" + get_random_string(43)),
        ],
        relays=[bearer(relay_token), bearer(relay_token), bearer("r_" + get_random_string(43))],
        known={
            "booking_id": [str(b.id) for b in (running, future, ended, others, over)],
            "slug": ["pendulums", "others"],
            "pool": ["pendulums", "others"],
            "experiment": ["pend00", "pend01", "dev00", "spin00", None],
            "reference": [running.reference, others.reference],
            "last_name": [lab.student.last_name, lab.student2.last_name],
            "code": [access_code],
            "streams": [["data"], ["video"], ["data", "video"]],
            "scopes": [["read"], ["write"], ["read", "write"]],
        },
    )


@pytest.fixture
def api_schema(in_process_app, credentials):
    return schemathesis.openapi.from_wsgi(
        SCHEMA_PATH, in_process_app, headers={"Accept": "application/vnd.oai.openapi+json"}
    )


def test_every_operation_of_the_document_is_fuzzed(api_schema):
    found = {
        (result.ok().method.upper(), result.ok().path) for result in api_schema.get_all_operations()
    }
    assert found == set(OPERATIONS)


def times_around_now(draw) -> tuple[str, str]:
    start = timezone.now() + timedelta(minutes=draw(st.integers(-10, 8 * 24 * 60)))
    end = start + timedelta(minutes=draw(st.sampled_from([5, 10, 30, 1, 45])))
    return start.isoformat(), end.isoformat()


def mostly(data) -> bool:
    return data.draw(st.integers(0, 3)) > 0


def with_real_values(case, credentials: Credentials, data) -> None:
    """Swap most generated values for real ones, so that cases get past "not found"."""
    known = credentials.known
    for name in ("booking_id", "slug"):
        if name in (case.path_parameters or {}) and mostly(data):
            case.path_parameters[name] = data.draw(st.sampled_from(known[name]))
    if isinstance(case.body, dict):
        for name in ("pool", "experiment", "reference", "last_name", "code", "streams", "scopes"):
            if name in case.body and known.get(name) and mostly(data):
                case.body[name] = data.draw(st.sampled_from(known[name]))
        if "start" in case.body and "end" in case.body and mostly(data):
            case.body["start"], case.body["end"] = times_around_now(data.draw)


def identity(operation, credentials: Credentials, data) -> tuple[dict, dict]:
    """(cookies, headers) of a caller the operation's security names, mostly a valid one."""
    schemes = {name for item in operation.definition.raw.get("security", []) for name in item}
    if "sessionCode" in schemes:
        return {}, data.draw(st.sampled_from(credentials.sessions))
    if "relayToken" in schemes:
        return {}, data.draw(st.sampled_from(credentials.relays))
    return data.draw(st.sampled_from(credentials.browsers))


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_the_api_answers_as_its_document_says(api_schema, credentials, method, path):
    operation = api_schema[path][method]
    server_errors: list[BaseException] = []

    def on_exception(sender, request=None, **kwargs):
        server_errors.append(sys.exc_info()[1])

    cases = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(case=cases, data=st.data())
    def fuzz(case, data):
        with_real_values(case, credentials, data)
        cookies, headers = identity(operation, credentials, data)
        server_errors.clear()
        with transaction.atomic():
            response = case.call(headers=headers, cookies=cookies)
            transaction.set_rollback(True)
        STATS[f"{method} {path} {response.status_code}"] += 1
        assert not server_errors, server_errors
        case.validate_response(response, checks=CHECKS)

    signals.got_request_exception.connect(on_exception)
    try:
        fuzz()
    finally:
        signals.got_request_exception.disconnect(on_exception)
        write_stats("fuzz", STATS)


# --- what the fuzz and its review found (fixed; kept as regression tests) -----------

FEED = "/api/v1/relay/revocations/"


def no_raise(client: Client) -> Client:
    client.raise_request_exception = False  # a crash answers 500, as in production
    return client


def test_the_feed_refuses_a_since_of_superscript_digits_as_invalid(lab):
    _, token = relay_token_create(relay=lab.relay, now=timezone.now())
    response = no_raise(Client()).get(
        FEED, {"since": "²"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert (response.status_code, response.json()["code"]) == (400, "invalid")


def test_session_events_refuse_an_after_of_superscript_digits_as_invalid(lab):
    now = timezone.now()
    booking = make_booking(lab.student, lab.pool, lab.pend00, now - timedelta(minutes=1))
    code = session_start_action(booking=booking, by=lab.student, now=now).code
    response = no_raise(Client()).get(
        "/api/v1/session/events/", {"after": "²"}, headers={"Authorization": f"Bearer {code}"}
    )
    assert (response.status_code, response.json()["code"]) == (400, "invalid")


@pytest.mark.parametrize("path", ["/api/v1/bookings/", "/api/v1/bookings/lookup/"])
def test_a_deeply_nested_body_is_refused_as_invalid(student_client, path):
    body = "[" * 100_000 + "]" * 100_000
    response = no_raise(student_client).post(path, body, content_type="application/json")
    assert (response.status_code, response.json()["code"]) == (400, "invalid")


@pytest.mark.parametrize(
    "answers",
    [
        pytest.param(
            '{"q1": 1e400}',
            id="a number too large",
        ),
        pytest.param(
            '{"q1": "a\\u0000b"}',
            id="a NUL character",
        ),
        pytest.param(
            '{"q1": "\\ud800"}',
            id="a lone surrogate",
        ),
    ],
)
def test_survey_answers_the_database_cannot_store_are_no_server_error(lab, answers):
    now = timezone.now()
    booking = make_booking(lab.student, lab.pool, lab.pend00, now - timedelta(minutes=1))
    code = session_start_action(booking=booking, by=lab.student, now=now).code
    response = no_raise(Client()).post(
        "/api/v1/session/survey/",
        f'{{"answers": {answers}}}',
        content_type="application/json",
        headers={"Authorization": f"Bearer {code}"},
    )
    assert response.status_code in (201, 400), response.content


def test_survey_answers_nested_hundreds_deep_are_no_server_error(lab):
    now = timezone.now()
    booking = make_booking(lab.student, lab.pool, lab.pend00, now - timedelta(minutes=1))
    code = session_start_action(booking=booking, by=lab.student, now=now).code
    nested = "[" * 600 + "]" * 600  # the decoder takes it; two frames a level do not
    response = no_raise(Client()).post(
        "/api/v1/session/survey/",
        f'{{"answers": {{"q1": {nested}}}}}',
        content_type="application/json",
        headers={"Authorization": f"Bearer {code}"},
    )
    assert response.status_code in (201, 400), response.content


def test_the_admin_duration_field_refuses_superscript_digits():
    from django.core.exceptions import ValidationError

    from booking.admin_pages import DurationField

    with pytest.raises(ValidationError):
        DurationField().clean("²")


def test_the_document_lists_the_bookings_list_refusing_a_bad_include(student_client):
    document = json.loads(
        student_client.get(SCHEMA_PATH, HTTP_ACCEPT="application/vnd.oai.openapi+json").content
    )
    response = student_client.get("/api/v1/bookings/", {"include": "future"})
    assert response.status_code == 400
    assert "400" in document["paths"]["/api/v1/bookings/"]["get"]["responses"]


def test_the_document_lists_the_csrf_refusal_of_every_browser_post(lab):
    booking = make_booking(lab.student, lab.pool, lab.pend00, timezone.now())
    document = json.loads(
        Client().get(SCHEMA_PATH, HTTP_ACCEPT="application/vnd.oai.openapi+json").content
    )
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(lab.student)
    missing = []
    for path, operations in document["paths"].items():
        post = operations.get("post")
        if not post or {"cookieAuth": []} not in post.get("security", []):
            continue
        response = browser.post(path.replace("{booking_id}", str(booking.id)), {})
        assert response.status_code == 403, (path, response.status_code)
        if "403" not in post["responses"]:
            missing.append(path)
    assert not missing, missing
