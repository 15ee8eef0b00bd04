"""Replaying a session's events, and answering its survey (both by session code)."""

import json
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from booking.errors import ApiError, rule_error
from booking.serializers import ErrorOut
from messaging import events
from messaging.models import SessionEvent, SurveyResponse
from sessions_app.auth import SessionCodeAuthentication
from sessions_app.models import Session
from sessions_app.services import booking_is_over, issue_stream_tokens

EventsOut = inline_serializer(
    "EventsOut", fields={"events": serializers.ListField(child=serializers.DictField())}
)


def _readable(session: Session) -> None:
    """Readable while the booking runs and for the survey period after it ends."""
    booking = session.booking
    ended = booking.cancelled_at if booking.status == "cancelled" else booking.end
    limit = (ended or booking.end) + timedelta(seconds=settings.SURVEY_PERIOD_SECONDS)
    if timezone.now() > limit:
        raise rule_error("booking_over_gone")


class SessionEventsApi(APIView):
    authentication_classes = [SessionCodeAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=[OpenApiParameter("after", int, description="the last seq the client saw")],
        responses={200: EventsOut, 400: ErrorOut, 401: ErrorOut, 410: ErrorOut},
    )
    def get(self, request: Request) -> Response:
        raw = request.query_params.get("after", "0")
        if not (raw.isascii() and raw.isdecimal()) or len(raw) > 9:
            raise ApiError("invalid", "after must be a whole number (a seq).", 400)
        session = request.auth
        _readable(session)
        rows = list(
            SessionEvent.objects.filter(session=session, seq__gt=int(raw))
            .order_by("seq")
            .values_list("payload", flat=True)[:500]
        )
        if any(row["type"] == events.SESSION_EXTENDED for row in rows):
            now = timezone.now()
            streams = (
                []
                if booking_is_over(session.booking, now)
                else issue_stream_tokens(session=session, booking=session.booking, now=now, by=None)
            )
            rows = [
                {**row, "streams": streams} if row["type"] == events.SESSION_EXTENDED else row
                for row in rows
            ]
        return Response({"events": rows})


def _unstorable(value: object) -> bool:
    """NUL and lone surrogates: PostgreSQL's jsonb holds neither."""
    if isinstance(value, str):
        return "\x00" in value or any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, dict):
        return any(_unstorable(k) or _unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_unstorable(v) for v in value)
    return False


class SurveyIn(serializers.Serializer):
    answers = serializers.DictField()


class SessionSurveyApi(APIView):
    authentication_classes = [SessionCodeAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=SurveyIn, responses={201: None, 400: ErrorOut, 401: ErrorOut, 410: ErrorOut}
    )
    def post(self, request: Request) -> Response:
        data = SurveyIn(data=request.data)
        data.is_valid(raise_exception=True)
        answers = data.validated_data["answers"]
        try:
            # Strict JSON: no NaN or Infinity (1e400 parses as inf), which no database stores.
            text = json.dumps(answers, allow_nan=False)
            unstorable = _unstorable(answers)
        except (ValueError, RecursionError):
            raise ApiError("invalid", "The answers must be plain JSON values.", 400) from None
        if unstorable:
            raise ApiError("invalid", "The answers hold characters that cannot be stored.", 400)
        if len(text) > 10_000:
            raise ApiError("invalid", "The answers are too long.", 400)
        session = request.auth
        _readable(session)
        SurveyResponse.objects.create(session=session, submitted_at=timezone.now(), answers=answers)
        return Response(status=201)
