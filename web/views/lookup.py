"""Finding a booking by reference and last name, without signing in."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from booking import selectors as booking_selectors
from booking.errors import MESSAGES
from web import messages as text
from web.forms import LookupForm
from web.throttles import LOOKUP, address_allowed


@require_http_methods(["GET", "POST"])
def booking_lookup(request: HttpRequest) -> HttpResponse:
    """For guests, or anyone away from the browser they booked with. Read-only: nothing can
    be changed with a reference alone."""
    form = LookupForm(request.POST if request.method == "POST" else None)
    booking, error, status = None, "", 200
    if form.is_valid():
        if not address_allowed(request, LOOKUP):
            error, status = MESSAGES["throttled"], 429
        else:
            booking = booking_selectors.booking_lookup(**form.cleaned_data)
            if booking is None:
                error, status = text.LOOKUP_NOT_FOUND, 404
    elif request.method == "POST":
        status = 400
    return render(
        request,
        "web/lookup.html",
        {"form": form, "booking": booking, "error": error},
        status=status,
    )
