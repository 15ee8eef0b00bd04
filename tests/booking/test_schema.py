"""The OpenAPI document describes what the API really answers."""

import json
from datetime import timedelta

import jsonschema
import pytest

from booking.errors import MESSAGES
from tests.booking.test_api_bookings import book
from tests.conftest import NOW

pytestmark = pytest.mark.usefixtures("frozen")

DOCUMENTED = {
    "/api/v1/pools/": {"get"},
    "/api/v1/pools/{slug}/availability/": {"get"},
    "/api/v1/groups/join/": {"post"},
    "/api/v1/bookings/": {"get", "post"},
    "/api/v1/bookings/{booking_id}/": {"get"},
    "/api/v1/bookings/{booking_id}/cancel/": {"post"},
    "/api/v1/bookings/{booking_id}/extend/": {"post"},
    "/api/v1/bookings/lookup/": {"post"},
    "/api/v1/bookings/{booking_id}/session/": {"post"},
    "/api/v1/session/": {"get"},
    "/api/v1/session/cancel/": {"post"},
    "/api/v1/session/extend/": {"post"},
    "/api/v1/session/subset/": {"post"},
    "/api/v1/session/events/": {"get"},
    "/api/v1/session/survey/": {"post"},
    "/api/v1/relay/revocations/": {"get"},
}


@pytest.fixture
def schema(client) -> dict:
    response = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return json.loads(response.content)


def check(schema: dict, path: str, method: str, response) -> None:
    """Validate a real response's body against the schema of its path, method and status."""
    operation = schema["paths"][path][method]
    documented = operation["responses"]
    assert str(response.status_code) in documented, (path, method, response.status_code)
    content = documented[str(response.status_code)].get("content", {})
    body_schema = _inline_refs(content["application/json"]["schema"], schema)
    jsonschema.Draft202012Validator(body_schema).validate(response.json())


def _inline_refs(node, doc):
    if isinstance(node, dict):
        if "$ref" in node:
            target = doc
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return _inline_refs(target, doc)
        return {k: _inline_refs(v, doc) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, doc) for v in node]
    return node


def test_every_path_is_documented(schema):
    paths = {p: set(ops) & {"get", "post"} for p, ops in schema["paths"].items()}
    for path, methods in DOCUMENTED.items():
        assert paths.get(path) == methods, path
    assert schema["openapi"].startswith("3.")


def test_real_responses_match_the_schema(
    schema, student_client, student2_client, outsider_client, frozen
):
    created = book(student_client, start=0, end=10)
    check(schema, "/api/v1/bookings/", "post", created)
    booking = created.json()
    check(schema, "/api/v1/bookings/", "post", book(student2_client, start=5, end=15))
    check(schema, "/api/v1/bookings/", "post", book(student_client, start=-60, end=10))
    check(schema, "/api/v1/bookings/", "post", book(outsider_client))
    bad = student_client.post("/api/v1/bookings/", "{", content_type="application/json")
    check(schema, "/api/v1/bookings/", "post", bad)
    check(schema, "/api/v1/bookings/", "get", student_client.get("/api/v1/bookings/"))
    check(schema, "/api/v1/pools/", "get", student_client.get("/api/v1/pools/"))
    availability = student_client.get("/api/v1/pools/pendulums/availability/")
    check(schema, "/api/v1/pools/{slug}/availability/", "get", availability)
    detail = f"/api/v1/bookings/{booking['id']}/"
    check(schema, "/api/v1/bookings/{booking_id}/", "get", student_client.get(detail))
    check(schema, "/api/v1/bookings/{booking_id}/", "get", student2_client.get(detail))
    frozen.move_to(NOW + timedelta(minutes=1))
    extended = student_client.post(detail + "extend/", {}, content_type="application/json")
    check(schema, "/api/v1/bookings/{booking_id}/extend/", "post", extended)
    cancelled = student_client.post(detail + "cancel/")
    check(schema, "/api/v1/bookings/{booking_id}/cancel/", "post", cancelled)
    lookup = student_client.post(
        "/api/v1/bookings/lookup/",
        {"reference": booking["reference"], "last_name": "Student"},
        content_type="application/json",
    )
    check(schema, "/api/v1/bookings/lookup/", "post", lookup)
    join = outsider_client.post(
        "/api/v1/groups/join/", {"code": "x"}, content_type="application/json"
    )
    check(schema, "/api/v1/groups/join/", "post", join)


def test_the_check_catches_a_response_the_schema_does_not_describe(schema, student_client):
    response = book(student_client, start=0, end=10)
    response._container = [json.dumps({"id": 5}).encode()]
    with pytest.raises(jsonschema.ValidationError):
        check(schema, "/api/v1/bookings/", "post", response)


def test_every_operation_documents_its_503(schema, student_client, monkeypatch, frozen):
    operations = [
        (path, method, operation)
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
        if method in {"get", "post"}
    ]
    assert len(operations) == sum(len(m) for m in DOCUMENTED.values())
    for path, method, operation in operations:
        documented = operation["responses"]["503"]
        assert "server_busy" in documented["description"], (path, method)
        assert "Retry-After" in documented["headers"]
    signing = {"/api/v1/bookings/{booking_id}/session/", "/api/v1/session/"}
    for path in signing:
        method = "post" if "bookings" in path else "get"
        assert (
            "relay_unavailable" in schema["paths"][path][method]["responses"]["503"]["description"]
        )
    # a real one: the relay's secret is missing when the session starts
    monkeypatch.delenv("RELAY_TEST_SECRET")
    booking = book(student_client, start=0, end=10).json()
    frozen.move_to(NOW + timedelta(minutes=1))
    response = student_client.post(f"/api/v1/bookings/{booking['id']}/session/")
    assert response.status_code == 503
    check(schema, "/api/v1/bookings/{booking_id}/session/", "post", response)


def test_a_request_django_refuses_before_the_api_is_a_documented_400(schema, student_client):
    """A Host header the server does not answer to (found by the fuzz) is refused by Django
    before any view runs: on API paths in the API's shape, documented on every operation;
    the pages keep Django's own page."""
    operations = [
        (path, method, operation)
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
        if method in {"get", "post"}
    ]
    for path, method, operation in operations:
        assert "invalid" in operation["responses"]["400"]["description"], (path, method)
    response = student_client.get("/api/v1/session/", HTTP_HOST="q[")
    assert response.status_code == 400
    assert response.json() == {"code": "invalid", "detail": MESSAGES["bad_request"]}
    check(schema, "/api/v1/session/", "get", response)
    page = student_client.get("/accounts/login/", HTTP_HOST="q[")
    assert page.status_code == 400 and page["Content-Type"].startswith("text/html")
