"""The API's shared plumbing: input parsing (booking/apis.py `parse`) and content
negotiation (booking/negotiation.py), each against what DRF itself does."""

import threading

import pytest
from django.http import Http404
from django.test import RequestFactory
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from booking.apis import parse
from booking.negotiation import AnyFirstNegotiation
from booking.serializers import BookingCreateIn, JoinIn

GOOD = {"pool": "p", "start": "2026-12-03T10:00:00Z", "end": "2026-12-03T10:30:00Z"}
BAD = [
    {"pool": 5, "start": "2026-12-03T10:00:00Z", "end": "2026-12-03T10:30:00Z"},
    {"pool": "p", "start": "2026-12-03T10:00:00", "end": "2026-12-03T10:30:00Z"},
    {"pool": "p", "start": "2026-12-03T10:30:00Z", "end": "2026-12-03T10:00:00Z"},
    {"start": "2026-12-03T10:00:00Z"},
    ["not", "an", "object"],
    "text",
    None,
]


def djangos(serializer_class: type, data: object) -> tuple:
    """What DRF's own `is_valid(raise_exception=True)` gives: the data, or the error."""
    serializer = serializer_class(data=data)
    try:
        serializer.is_valid(raise_exception=True)
    except exceptions.ValidationError as error:
        return "error", error.detail
    return "data", dict(serializer.validated_data)


def ours(serializer_class: type, data: object) -> tuple:
    try:
        return "data", dict(parse(serializer_class, data))
    except exceptions.ValidationError as error:
        return "error", error.detail


def test_parse_answers_as_drf_does_for_every_input_however_they_follow_each_other():
    inputs = [GOOD, *BAD, GOOD, *reversed(BAD), GOOD | {"experiment": None}]
    for data in inputs:
        assert ours(BookingCreateIn, data) == djangos(BookingCreateIn, data), data
    assert ours(JoinIn, {"code": "x"}) == ("data", {"code": "x"})
    assert ours(JoinIn, {"code": 1}) == djangos(JoinIn, {"code": 1})


def test_parse_gives_each_caller_its_own_data_on_any_thread():
    first = parse(BookingCreateIn, GOOD)
    first["pool"] = "changed"
    assert parse(BookingCreateIn, GOOD)["pool"] == "p"

    seen = []
    threads = [
        threading.Thread(target=lambda n=n: seen.append(parse(JoinIn, {"code": f"c{n}"})["code"]))
        for n in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == sorted(f"c{n}" for n in range(8))


RENDERER_SETS = [
    [JSONRenderer()],
    [OpenApiYamlRenderer(), OpenApiJsonRenderer()],
    [OpenApiJsonRenderer(), JSONRenderer()],
]
ACCEPTS = [
    None,
    "*/*",
    "application/json",
    "application/json; indent=4",
    "*/*;q=0.8",
    "text/html",
    "text/html, */*",
    "application/*",
    "application/vnd.oai.openapi+json",
    "",
]


def negotiated(negotiation: type, accept: str | None, query: str, suffix: str | None, renderers):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(RequestFactory().get("/api/v1/pools/" + query, **headers))
    try:
        renderer, media_type = negotiation().select_renderer(request, renderers, suffix)
    except exceptions.NotAcceptable:
        return "406"
    except Http404:  # a format no renderer has
        return "404"
    return type(renderer), media_type


@pytest.mark.parametrize("renderers", RENDERER_SETS, ids=["json", "openapi", "mixed"])
@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize(
    ("query", "suffix"), [("", None), ("?format=json", None), ("?format=yaml", None), ("", "json")]
)
def test_negotiation_chooses_what_drfs_does(renderers, accept, query, suffix):
    assert negotiated(AnyFirstNegotiation, accept, query, suffix, renderers) == negotiated(
        DefaultContentNegotiation, accept, query, suffix, renderers
    )


def test_the_api_negotiates_with_it():
    from rest_framework.settings import api_settings

    assert api_settings.DEFAULT_CONTENT_NEGOTIATION_CLASS is AnyFirstNegotiation
