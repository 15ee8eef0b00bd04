"""CORS for the bearer session endpoints: experiment UIs are served from other origins."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from booking.origins import origin_is_allowed

PREFIX = "/api/v1/session/"


class SessionCorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(PREFIX):
            return self.get_response(request)
        origin = request.headers.get("Origin")
        allowed = origin_is_allowed(origin)
        if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method"):
            response = HttpResponse(status=204 if allowed else 403)
        else:
            response = self.get_response(request)
        if allowed:
            response["Access-Control-Allow-Origin"] = origin
            response["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response["Access-Control-Max-Age"] = "600"
        response["Vary"] = "Origin"
        return response
