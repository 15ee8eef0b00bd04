"""Strict input parsing (wrong type or format is 400 `invalid`) and output shapes for the schema."""

from datetime import UTC, datetime

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

MIN_YEAR, MAX_YEAR = 2000, 2200


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def parse_aware(value: object) -> datetime:
    """An ISO 8601 time with an offset, in UTC; anything else is a ValueError."""
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError("Expected an ISO 8601 time with an offset, e.g. 2026-05-01T10:00:00Z.")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("Not an ISO 8601 time; expected e.g. 2026-05-01T10:00:00Z.") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("The time needs an offset (Z or +01:00).")
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise ValueError(f"The time must lie between {MIN_YEAR} and {MAX_YEAR}.")
    return parsed.astimezone(UTC)


@extend_schema_field(OpenApiTypes.DATETIME)
class AwareDateTimeField(serializers.Field):
    default_error_messages = {"invalid": "{message}"}

    def to_internal_value(self, data: object) -> datetime:
        try:
            return parse_aware(data)
        except ValueError as error:
            self.fail("invalid", message=str(error))

    def to_representation(self, value: datetime) -> str | None:
        return iso(value)


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of turning them into text."""

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data: object) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


# --- input ---------------------------------------------------------------------------------


class BookingCreateIn(serializers.Serializer):
    pool = StrictCharField(max_length=64)
    experiment = StrictCharField(max_length=64, required=False, allow_null=True)
    start = AwareDateTimeField()
    end = AwareDateTimeField()

    def validate(self, attrs: dict) -> dict:
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": "The end must be after the start."})
        return attrs


class ExtendIn(serializers.Serializer):
    minutes = StrictIntegerField(min_value=1, max_value=24 * 60, required=False)


class JoinIn(serializers.Serializer):
    code = StrictCharField(max_length=200)


class LookupIn(serializers.Serializer):
    reference = StrictCharField(max_length=20)
    last_name = StrictCharField(max_length=150)


class AvailabilityQuery(serializers.Serializer):
    from_ = AwareDateTimeField(required=False)
    to = AwareDateTimeField(required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["from"] = self.fields.pop("from_")


# --- output (documentation of what the views return) -------------------------------------------


class ErrorOut(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()


class BookingOut(serializers.Serializer):
    id = serializers.CharField()
    reference = serializers.CharField()
    pool = serializers.CharField()
    experiment = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    booked_end = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=["booked", "started", "cancelled", "ended", "no_show"])
    created_at = serializers.DateTimeField()
    cancelled_at = serializers.DateTimeField(allow_null=True)
    cancelled_by = serializers.ChoiceField(choices=["user", "staff", "system"], allow_null=True)
    cancel_reason = serializers.CharField(allow_blank=True)


class QuotaOut(serializers.Serializer):
    period = serializers.IntegerField()
    limit = serializers.IntegerField()


class PolicyOut(serializers.Serializer):
    min_duration = serializers.IntegerField()
    max_duration = serializers.IntegerField()
    book_ahead = serializers.IntegerField()
    start_in_past = serializers.IntegerField()
    max_bookings = serializers.IntegerField()
    grace_period = serializers.IntegerField()
    extend_step = serializers.IntegerField()
    max_extension = serializers.IntegerField()
    quota = QuotaOut(allow_null=True)


class ExperimentOut(serializers.Serializer):
    slug = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    available = serializers.BooleanField()
    unavailable_reason = serializers.CharField(allow_blank=True)


class PoolOut(serializers.Serializer):
    slug = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    policy = PolicyOut()
    experiments = ExperimentOut(many=True)


class IntervalOut(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


class AvailabilityOut(serializers.Serializer):
    from_ = serializers.DateTimeField()
    to = serializers.DateTimeField()
    experiments = serializers.DictField(child=IntervalOut(many=True))
    any = IntervalOut(many=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["from"] = self.fields.pop("from_")


class GroupOut(serializers.Serializer):
    slug = serializers.CharField()
    title = serializers.CharField()
    pools = serializers.ListField(child=serializers.CharField())


class SubsetIn(serializers.Serializer):
    streams = serializers.ListField(child=StrictCharField(max_length=64), max_length=32)
    scopes = serializers.ListField(child=StrictCharField(max_length=64), max_length=32)
    ttl = StrictIntegerField(min_value=1, max_value=7 * 86400, required=False)


class StreamOut(serializers.Serializer):
    for_ = serializers.CharField()
    url = serializers.CharField()
    audience = serializers.CharField()
    topic = serializers.CharField()
    connection_type = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())
    token = serializers.CharField()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["for"] = self.fields.pop("for_")


class UiOut(serializers.Serializer):
    title = serializers.CharField()
    url = serializers.CharField()


class SessionOut(serializers.Serializer):
    session = serializers.CharField()
    booking = serializers.CharField()
    status = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    streams = StreamOut(many=True)
    uis = UiOut(many=True)


class SubsetOut(serializers.Serializer):
    streams = StreamOut(many=True)
