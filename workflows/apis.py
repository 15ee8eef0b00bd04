"""REST endpoints whose work crosses floors: each calls one action from workflows.actions."""

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from booking.apis import ERRORS, booking_to_dict, own_booking, parse
from booking.errors import rule_error
from booking.serializers import BookingOut, ErrorOut, ExtendIn, SessionOut, SubsetIn, SubsetOut
from sessions_app.auth import SessionCodeAuthentication
from sessions_app.services import booking_is_over
from workflows import actions

SESSION_ERRORS = {401: ErrorOut, 410: ErrorOut}


def _minutes(request: Request) -> int | None:
    data = parse(ExtendIn, request.data if request.data else {})
    minutes = data.get("minutes")
    return None if minutes is None else minutes * 60


class BookingCancelApi(APIView):
    @extend_schema(
        request=None, responses={200: BookingOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut}
    )
    def post(self, request: Request, booking_id: object) -> Response:
        booking = own_booking(request, booking_id)
        booking = actions.booking_cancel_action(
            booking=booking, by=request.user, now=timezone.now()
        )
        return Response(booking_to_dict(booking))


class BookingExtendApi(APIView):
    @extend_schema(request=ExtendIn, responses={200: BookingOut, **ERRORS})
    def post(self, request: Request, booking_id: object) -> Response:
        seconds = _minutes(request)
        booking = own_booking(request, booking_id)
        booking = actions.booking_extend_action(
            booking=booking, seconds=seconds, by=request.user, now=timezone.now()
        )
        return Response(booking_to_dict(booking))


class BookingSessionApi(APIView):
    @extend_schema(
        request=None,
        responses={201: SessionOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut},
    )
    def post(self, request: Request, booking_id: object) -> Response:
        booking = own_booking(request, booking_id)
        state = actions.session_start_action(booking=booking, by=request.user, now=timezone.now())
        return Response(state.as_dict(), status=201)


class BearerSessionView(APIView):
    """Endpoints for experiment UIs, authenticated by the session code alone."""

    authentication_classes = [SessionCodeAuthentication]
    permission_classes = [IsAuthenticated]

    def live_session(self, request: Request):
        session = request.auth
        if booking_is_over(session.booking, timezone.now()):
            raise rule_error("booking_over_gone")
        return session


class SessionApi(BearerSessionView):
    @extend_schema(responses={200: SessionOut, **SESSION_ERRORS})
    def get(self, request: Request) -> Response:
        session = self.live_session(request)
        state = actions.session_refresh_action(session=session, by=request.user, now=timezone.now())
        return Response(state.as_dict())


class SessionCancelApi(BearerSessionView):
    @extend_schema(request=None, responses={200: BookingOut, **SESSION_ERRORS})
    def post(self, request: Request) -> Response:
        booking = actions.booking_cancel_action(
            booking=request.auth.booking, by=request.user, now=timezone.now()
        )
        return Response(booking_to_dict(booking))


class SessionExtendApi(BearerSessionView):
    @extend_schema(
        request=ExtendIn,
        responses={200: SessionOut, 400: ErrorOut, 409: ErrorOut, 422: ErrorOut, **SESSION_ERRORS},
    )
    def post(self, request: Request) -> Response:
        seconds = _minutes(request)
        session = self.live_session(request)
        state = actions.session_extend_action(
            session=session, seconds=seconds, by=request.user, now=timezone.now()
        )
        return Response(state.as_dict())


class SessionSubsetApi(BearerSessionView):
    @extend_schema(
        request=SubsetIn,
        responses={201: SubsetOut, 400: ErrorOut, 422: OpenApiResponse(ErrorOut), **SESSION_ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = parse(SubsetIn, request.data)
        session = self.live_session(request)
        streams = actions.session_subset_action(
            session=session,
            streams=data["streams"],
            scopes=data["scopes"],
            ttl=data.get("ttl"),
            by=request.user,
            now=timezone.now(),
        )
        return Response({"streams": streams}, status=201)
