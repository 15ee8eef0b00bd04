"""REST endpoints whose work crosses floors: they call one action from workflows.actions."""

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from booking.apis import ERRORS, booking_to_dict, own_booking, parse
from booking.serializers import BookingOut, ErrorOut, ExtendIn
from workflows.actions import booking_cancel_action, booking_extend_action


class BookingCancelApi(APIView):
    @extend_schema(request=None, responses={200: BookingOut, 401: ErrorOut, 404: ErrorOut})
    def post(self, request: Request, booking_id: object) -> Response:
        booking = own_booking(request, booking_id)
        booking = booking_cancel_action(booking=booking, by=request.user, now=timezone.now())
        return Response(booking_to_dict(booking))


class BookingExtendApi(APIView):
    @extend_schema(request=ExtendIn, responses={200: BookingOut, **ERRORS})
    def post(self, request: Request, booking_id: object) -> Response:
        data = parse(ExtendIn, request.data if request.data else {})
        booking = own_booking(request, booking_id)
        minutes = data.get("minutes")
        booking = booking_extend_action(
            booking=booking,
            seconds=None if minutes is None else minutes * 60,
            by=request.user,
            now=timezone.now(),
        )
        return Response(booking_to_dict(booking))
