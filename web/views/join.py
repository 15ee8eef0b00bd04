"""Joining a group with an access code: signed in, or as a guest with a name and e-mail."""

from django.contrib import messages
from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from booking import services
from booking.errors import MESSAGES, ApiError
from booking.models import Group
from web import messages as text
from web import selectors
from web.forms import GuestForm, JoinCodeForm
from web.throttles import JOIN, address_allowed

MODEL_BACKEND = "web.login_sessions.SessionUserBackend"


def _after_join(group: Group) -> HttpResponse:
    """To the pool page when the group has one pool; home (which lists them all) otherwise."""
    pools = list(group.pools.order_by("slug").values_list("slug", flat=True)[:2])
    if len(pools) == 1:
        return redirect("web:pool", slug=pools[0])
    return redirect("web:home")


def _join_page(
    request: HttpRequest,
    *,
    code: str = "",
    group: Group | None = None,
    error: str = "",
    guest_form: GuestForm | None = None,
    status: int = 200,
) -> HttpResponse:
    return render(
        request,
        "web/join.html",
        {
            "code": code,
            "group": group,
            "error": error,
            "code_form": JoinCodeForm(initial={"code": code}),
            "guest_form": guest_form or GuestForm(),
            "login_next": reverse("web:join-code", args=[code]) if group is not None else "",
        },
        status=status,
    )


def _join_signed_in(request: HttpRequest, code: str) -> HttpResponse:
    if not address_allowed(request, JOIN):
        return _join_page(request, code=code, error=MESSAGES["throttled"], status=429)
    try:
        group = services.group_join(user=request.user, code=code, now=timezone.now())
    except ApiError as error:
        return _join_page(request, code=code, error=error.detail, status=error.status)
    messages.success(request, text.JOINED.format(group=group.title))
    return _after_join(group)


@require_http_methods(["GET", "POST"])
def join_form(request: HttpRequest) -> HttpResponse:
    """/join/: type a code. Signed in, it joins at once; otherwise on to the code's page."""
    if request.method == "GET":
        return _join_page(request)
    form = JoinCodeForm(request.POST)
    if not form.is_valid():
        return _join_page(request, error=text.JOIN_CODE_INVALID, status=400)
    code = form.cleaned_data["code"].strip()
    if request.user.is_authenticated:
        return _join_signed_in(request, code)
    if "/" in code:  # no code we make has one, and it cannot travel in the link
        return _join_page(request, error=text.JOIN_CODE_INVALID, status=404)
    return redirect("web:join-code", code=code)


@require_http_methods(["GET"])
def join_code(request: HttpRequest, code: str) -> HttpResponse:
    """/join/<code>/, the link a course hands out."""
    if request.user.is_authenticated:
        return _join_signed_in(request, code)
    if not address_allowed(request, JOIN):
        return _join_page(request, code=code, error=MESSAGES["throttled"], status=429)
    group = selectors.group_for_access_code(code=code, now=timezone.now())
    if group is None:
        return _join_page(request, code=code, error=text.JOIN_CODE_INVALID, status=404)
    return _join_page(request, code=code, group=group)


@require_POST
def join_guest(request: HttpRequest, code: str) -> HttpResponse:
    """Continue as a guest: a new user with no password, signed in until the browser closes."""
    if request.user.is_authenticated:
        return redirect("web:join-code", code=code)
    form = GuestForm(request.POST)
    # Throttled before anything else: the answer tells whether the code is good.
    if not address_allowed(request, JOIN):
        return _join_page(
            request, code=code, guest_form=form, error=MESSAGES["throttled"], status=429
        )
    now = timezone.now()
    group = selectors.group_for_access_code(code=code, now=now)
    if group is None:
        return _join_page(request, code=code, error=text.JOIN_CODE_INVALID, status=404)
    if not form.is_valid():
        return _join_page(request, code=code, group=group, guest_form=form, status=400)
    try:
        user, group = services.guest_join(code=code, now=now, **form.cleaned_data)
    except ApiError as error:
        return _join_page(
            request, code=code, guest_form=form, error=error.detail, status=error.status
        )
    login(request, user, backend=MODEL_BACKEND)
    request.session.set_expiry(0)
    messages.success(
        request,
        text.GUEST_WELCOME.format(name=user.first_name, group=group.title, email=user.email),
    )
    return _after_join(group)
