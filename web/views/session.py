"""The session page: everything on it runs in the browser with the session code."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET


@require_GET
def session_page(request: HttpRequest) -> HttpResponse:
    """The code comes from the URL fragment or sessionStorage and never reaches the server
    in a URL; web/static/web/session.js sends it as a bearer token and on the websocket."""
    return render(request, "web/session.html")
