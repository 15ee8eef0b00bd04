"""Every API error as {"code", "detail"} with the status of the architecture page."""

import logging

from django.core.exceptions import PermissionDenied
from django.db import OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from booking.errors import MESSAGES, ApiError

log = logging.getLogger(__name__)


def _flatten(detail: object) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{key}: {_flatten(value)}" for key, value in detail.items())
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    return str(detail)


def error_body(code: str, detail: str, **extra: object) -> dict:
    return {"code": code, "detail": detail, **extra}


def exception_handler(exc: Exception, context: dict) -> Response | None:
    set_rollback()
    if isinstance(exc, ApiError):
        return Response(error_body(exc.code, exc.detail), status=exc.status)
    if isinstance(exc, Http404):
        return Response(error_body("not_found", MESSAGES["not_found"]), status=404)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return Response(
            error_body("not_authenticated", MESSAGES["not_authenticated"]),
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="api"'},
        )
    if isinstance(exc, exceptions.Throttled):
        headers = {"Retry-After": str(int(exc.wait))} if exc.wait else {}
        return Response(error_body("throttled", MESSAGES["throttled"]), status=429, headers=headers)
    if isinstance(exc, exceptions.PermissionDenied | PermissionDenied):
        detail = str(getattr(exc, "detail", "")) or MESSAGES["permission_denied"]
        return Response(error_body("permission_denied", detail), status=403)
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else None
        return Response(error_body("invalid", _flatten(exc.detail), fields=fields), status=400)
    if isinstance(exc, exceptions.ParseError | exceptions.UnsupportedMediaType):
        return Response(error_body("invalid", str(exc.detail)), status=400)
    if isinstance(exc, exceptions.MethodNotAllowed):
        return Response(error_body("method_not_allowed", str(exc.detail)), status=405)
    if isinstance(exc, exceptions.NotAcceptable):
        return Response(error_body("not_acceptable", str(exc.detail)), status=406)
    if isinstance(exc, exceptions.APIException):
        return Response(error_body("error", str(exc.detail)), status=exc.status_code)
    if isinstance(exc, OperationalError):
        # SQLite's write lock waited past its timeout, or the database went away.
        log.warning("database unavailable: %s", exc)
        return Response(
            error_body("server_busy", MESSAGES["server_busy"]),
            status=503,
            headers={"Retry-After": "1"},
        )
    return None


def json_400(request, exception=None) -> JsonResponse:  # noqa: ARG001
    """What Django refuses before the API sees the request (an unknown Host header, a
    malformed cookie or form the framework rejects), in the API's shape."""
    return JsonResponse(error_body("invalid", MESSAGES["bad_request"]), status=400)


def json_404(request, exception=None) -> JsonResponse:  # noqa: ARG001
    return JsonResponse(error_body("not_found", MESSAGES["not_found"]), status=404)


def json_500(request) -> JsonResponse:  # noqa: ARG001
    return JsonResponse(error_body("server_error", MESSAGES["server_error"]), status=500)
