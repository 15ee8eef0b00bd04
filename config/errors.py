"""JSON errors for API paths; Django's pages for everything else."""

from django.http import HttpRequest, HttpResponse
from django.views import defaults

from booking.api_errors import json_400, json_404, json_500


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return json_400(request, exception)
    return defaults.bad_request(request, exception)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return json_404(request, exception)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return json_500(request)
    return defaults.server_error(request)
