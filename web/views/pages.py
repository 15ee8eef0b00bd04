"""The home page and a pool's page (policy, availability calendar, booking form)."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from booking import selectors as booking_selectors
from booking.models import Experiment, Pool
from booking.policy import pool_policy
from web import selectors
from web.forms import JoinCodeForm
from web.policy_text import policy_sentences

UPCOMING_ON_HOME = 5
DEFAULT_MINUTES = 30


def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return render(request, "web/home_signed_out.html", {"join_form": JoinCodeForm()})
    now = timezone.now()
    bookings = booking_selectors.booking_list_for_user(user=request.user, now=now)
    return render(
        request,
        "web/home.html",
        {
            "pools": booking_selectors.pool_list_for_user(request.user),
            "bookings": list(bookings[:UPCOMING_ON_HOME]),
            "more_bookings": bookings.count() > UPCOMING_ON_HOME,
            "join_form": JoinCodeForm(),
        },
    )


def _booking_form_config(pool: Pool, experiments: list[Experiment]) -> dict:
    """What web/static/web/pool.js needs: the API addresses and the length limits."""
    low = max(1, -(-pool.min_duration // 60))  # whole minutes, rounded up
    high = max(low, pool.max_duration // 60)
    return {
        "pool": pool.slug,
        "availabilityUrl": f"/api/v1/pools/{pool.slug}/availability/",
        "bookingsApi": "/api/v1/bookings/",
        "myBookingsUrl": "/bookings/",
        "minMinutes": low,
        "maxMinutes": high,
        "defaultMinutes": min(high, max(low, DEFAULT_MINUTES)),
        "experiments": [
            {"slug": e.slug, "title": e.title, "available": e.available} for e in experiments
        ],
    }


@login_required
def pool_detail(request: HttpRequest, slug: str) -> HttpResponse:
    pool = selectors.pool_for_user(user=request.user, slug=slug)
    if pool is None:
        raise Http404("No such pool")
    experiments = list(pool.visible)
    config = _booking_form_config(pool, experiments)
    return render(
        request,
        "web/pool.html",
        {
            "pool": pool,
            "experiments": experiments,
            "policy": policy_sentences(pool_policy(pool)),
            "windows": selectors.pool_windows_ahead(pool=pool, now=timezone.now()),
            "config": config,
        },
    )
