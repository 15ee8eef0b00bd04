"""The REST API of the booking core: parse, check permission, call one service, shape output."""

import io
import threading
from datetime import timedelta

from django.conf import settings
from django.core.cache import caches
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import ParseError, PermissionDenied, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from booking import selectors, services
from booking.errors import MESSAGES, ApiError
from booking.models import Booking, Pool
from booking.negotiation import accepts_anything
from booking.parsers import StrictJSONParser
from booking.policy import pool_policy
from booking.serializers import (
    AvailabilityOut,
    AvailabilityQuery,
    BookingCreateIn,
    BookingOut,
    ErrorOut,
    GroupOut,
    JoinIn,
    LookupIn,
    PoolOut,
    iso,
)

ERRORS = {status: ErrorOut for status in (400, 401, 403, 404, 409, 422, 429)}


def booking_to_dict(booking: Booking) -> dict:
    cancelled_by = None
    if booking.status == "cancelled":
        if booking.cancelled_by_id is None:
            cancelled_by = "system"
        elif booking.cancelled_by_id == booking.user_id:
            cancelled_by = "user"
        else:
            cancelled_by = "staff"
    return {
        "id": str(booking.id),
        "reference": booking.reference,
        "pool": booking.pool.slug,
        "experiment": booking.experiment.slug,
        "start": iso(booking.start),
        "end": iso(booking.end),
        "booked_end": iso(booking.booked_end),
        "status": booking.status,
        "created_at": iso(booking.created_at),
        "cancelled_at": iso(booking.cancelled_at),
        "cancelled_by": cancelled_by,
        "cancel_reason": booking.cancel_reason,
    }


def intervals_to_list(intervals: list) -> list[dict]:
    return [{"start": iso(s), "end": iso(e)} for s, e in intervals]


_validators = threading.local()  # serializer class -> this thread's instance


def parse(serializer_class: type, data: object) -> dict:
    """`data` validated by `serializer_class`, or its `ValidationError`: what
    `serializer_class(data=data).is_valid(raise_exception=True)` gives.

    Valid data goes through one serializer per class and thread, used again for every
    request (`run_validation` keeps nothing between calls): DRF copies a serializer's
    declared fields, each built anew, whenever a serializer is made, which was a twentieth of
    a booking POST's time. Invalid data goes through a new serializer, so that the error is
    DRF's own, to the letter."""
    serializers_ = _validators.__dict__
    serializer = serializers_.get(serializer_class)
    if serializer is None:
        serializer = serializers_[serializer_class] = serializer_class()
    try:
        return serializer.run_validation(data)
    except ValidationError:
        pass
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class AddressThrottle(ScopedRateThrottle):
    """Per client address, counted in the database cache that every web process shares."""

    cache = caches["throttle"]

    def get_cache_key(self, request: Request, view: APIView) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class PoolListApi(APIView):
    @extend_schema(responses={200: PoolOut(many=True), 401: ErrorOut})
    def get(self, request: Request) -> Response:
        pools = selectors.pool_list_for_user(request.user)
        return Response(
            [
                {
                    "slug": pool.slug,
                    "title": pool.title,
                    "description": pool.description,
                    "policy": pool_policy(pool).as_dict(),
                    "experiments": [
                        {
                            "slug": e.slug,
                            "title": e.title,
                            "description": e.description,
                            "available": e.available,
                            "unavailable_reason": e.unavailable_reason,
                        }
                        for e in pool.visible
                    ],
                }
                for pool in pools
            ]
        )


class GroupJoinApi(APIView):
    throttle_classes = [AddressThrottle]
    throttle_scope = "join"

    @extend_schema(request=JoinIn, responses={200: GroupOut, **ERRORS})
    def post(self, request: Request) -> Response:
        data = parse(JoinIn, request.data)
        group = services.group_join(user=request.user, code=data["code"], now=timezone.now())
        return Response(
            {
                "slug": group.slug,
                "title": group.title,
                "pools": list(group.pools.order_by("slug").values_list("slug", flat=True)),
            }
        )


class AvailabilityApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("from", str, description="ISO 8601 with offset; default now"),
            OpenApiParameter("to", str, description="ISO 8601 with offset; default from + 1 day"),
        ],
        responses={200: AvailabilityOut, **ERRORS},
    )
    def get(self, request: Request, slug: str) -> Response:
        pool = get_object_or_404(Pool, slug=slug)
        query = parse(AvailabilityQuery, request.query_params.dict())
        now = timezone.now()
        start = query.get("from") or now
        end = query.get("to") or start + timedelta(days=1)
        if end <= start:
            raise ApiError("invalid", "'to' must be after 'from'.", 400)
        if end - start > timedelta(days=settings.AVAILABILITY_MAX_DAYS):
            raise ApiError(
                "invalid", f"Ask for at most {settings.AVAILABILITY_MAX_DAYS} days at a time.", 400
            )
        free = selectors.pool_availability(
            pool=pool, user=request.user, start=start, end=end, now=now
        )
        return Response(
            {
                "from": iso(start),
                "to": iso(end),
                "experiments": {
                    slug: intervals_to_list(items) for slug, items in free["experiments"].items()
                },
                "any": intervals_to_list(free["any"]),
            }
        )


def plain_booking_post(request) -> dict | None:
    """The validated input of a booking POST that DRF would take as it comes, or None.

    Plain means: a JSON body (`Content-Type: application/json`, nothing else in the header)
    of a sensible length, `Accept: */*` or none, no query string, an active user logged in
    by the session (none forced by DRF's test client) whose CSRF token passes the check
    DRF's session authentication makes, and input the booking serializer takes. For such a
    request DRF's authentication, permission (IsAuthenticated), negotiation
    (AnyFirstNegotiation's first renderer), parser (StrictJSONParser) and serializer all
    come to these answers; for anything else this returns None and DRF handles the request
    from the start. Nothing here writes. A failure reading the login session is raised."""
    meta = request.META
    if (
        meta.get("CONTENT_TYPE") != "application/json"
        or not accepts_anything(meta)
        or meta.get("QUERY_STRING")
    ):
        return None
    try:
        length = int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if length <= 0 or (limit is not None and length > limit):
        return None  # DRF reads such a body its own way, or not at all
    if getattr(request, "_force_auth_user", None) or getattr(request, "_force_auth_token", None):
        return None  # DRF's test client names a user for DRF's authentication alone
    user = request.user
    if not (user.is_authenticated and user.is_active):
        return None
    try:
        SessionAuthentication().enforce_csrf(request)
    except PermissionDenied:
        return None
    try:
        data = StrictJSONParser().parse(io.BytesIO(request.body), "application/json", {})
    except ParseError:
        return None
    try:
        return parse(BookingCreateIn, data)
    except ValidationError:
        return None


class BookingListCreateApi(APIView):
    # The booking POST is the platform's hottest request. A plain one (plain_booking_post)
    # skips DRF's per-request work before the view (the request wrapper, negotiation,
    # authentication, permissions, throttles, parsing through the wrapper): 6-7 % of its
    # CPU (docs/benchmarks.md, fifteenth look). Its answer still comes from DRF: the same
    # Response, exception handler and finalize_response. Every other request, and every one
    # this view's settings would treat otherwise (tests/booking/test_api_plain_post.py
    # checks them), goes through DRF's dispatch.
    plain_post = True

    def dispatch(self, request, *args, **kwargs):
        if self.plain_post and request.method == "POST" and not args and not kwargs:
            # What DRF's dispatch does around the view, for a plain POST.
            self.args, self.kwargs, self.request = args, kwargs, request
            self.headers = self.default_response_headers
            try:
                data = plain_booking_post(request)
                response = None if data is None else Response(_created(request.user, data), 201)
            except Exception as exc:
                # The view's refusals, and a failure reading the login session (the database
                # unreachable) where DRF's authentication would have met it.
                response = self.get_exception_handler()(exc, self.get_exception_handler_context())
                if response is None:
                    raise
                response.exception = True
            if response is not None:
                renderer = self.get_renderers()[0]  # what AnyFirstNegotiation answers to */*
                request.accepted_renderer = renderer
                request.accepted_media_type = renderer.media_type
                self.response = self.finalize_response(request, response)
                return self.response
        return super().dispatch(request, *args, **kwargs)

    @extend_schema(
        parameters=[OpenApiParameter("include", str, enum=["past"])],
        responses={200: BookingOut(many=True), 400: ErrorOut, 401: ErrorOut},
    )
    def get(self, request: Request) -> Response:
        include = request.query_params.get("include")
        if include not in (None, "", "past"):
            raise ApiError("invalid", "include may only be 'past'.", 400)
        bookings = selectors.booking_list_for_user(
            user=request.user, now=timezone.now(), include_past=include == "past"
        )
        return Response([booking_to_dict(b) for b in bookings])

    @extend_schema(request=BookingCreateIn, responses={201: BookingOut, **ERRORS})
    def post(self, request: Request) -> Response:
        return Response(_created(request.user, parse(BookingCreateIn, request.data)), status=201)


def _created(user, data: dict) -> dict:
    booking = services.booking_create(
        user=user,
        pool_slug=data["pool"],
        experiment_slug=data.get("experiment"),
        start=data["start"],
        end=data["end"],
        now=timezone.now(),
    )
    return booking_to_dict(booking)


def own_booking(request: Request, booking_id: object) -> Booking:
    booking = selectors.booking_get_for_user(user=request.user, booking_id=booking_id)
    if booking is None:
        raise ApiError("not_found", MESSAGES["not_found"], 404)
    return booking


class BookingDetailApi(APIView):
    @extend_schema(responses={200: BookingOut, 401: ErrorOut, 404: ErrorOut})
    def get(self, request: Request, booking_id: object) -> Response:
        return Response(booking_to_dict(own_booking(request, booking_id)))


class BookingLookupApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [AddressThrottle]
    throttle_scope = "lookup"

    @extend_schema(request=LookupIn, responses={200: BookingOut, **ERRORS})
    def post(self, request: Request) -> Response:
        data = parse(LookupIn, request.data)
        booking = selectors.booking_lookup(reference=data["reference"], last_name=data["last_name"])
        if booking is None:
            raise ApiError("not_found", MESSAGES["not_found"], 404)
        return Response(booking_to_dict(booking))
