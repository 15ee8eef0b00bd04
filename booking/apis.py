"""The REST API of the booking core: parse, check permission, call one service, shape output."""

import threading
from datetime import timedelta

from django.conf import settings
from django.core.cache import caches
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from booking import selectors, services
from booking.errors import MESSAGES, ApiError
from booking.models import Booking, Pool
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


class BookingListCreateApi(APIView):
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
        data = parse(BookingCreateIn, request.data)
        booking = services.booking_create(
            user=request.user,
            pool_slug=data["pool"],
            experiment_slug=data.get("experiment"),
            start=data["start"],
            end=data["end"],
            now=timezone.now(),
        )
        return Response(booking_to_dict(booking), status=201)


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
