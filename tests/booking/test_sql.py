"""The hand-written statements of the booking hot path stay in step with the models."""

import re

from booking.models import Booking
from booking.sql import INSERT_SQL


def test_the_insert_names_every_column_of_a_booking():
    listed = re.search(r"\((.*?)\)\s*VALUES", INSERT_SQL, re.S).group(1)
    columns = {name.strip().strip('"') for name in listed.split(",")}
    assert columns == {field.column for field in Booking._meta.concrete_fields}


def test_a_booking_made_by_the_api_reads_back_like_one_made_by_the_orm(lab, student_client):
    from datetime import timedelta

    from django.utils import timezone

    start = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    made = student_client.post(
        "/api/v1/bookings/",
        {
            "pool": lab.pool.slug,
            "experiment": lab.pend00.slug,
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=10)).isoformat(),
        },
        content_type="application/json",
    )
    assert made.status_code == 201, made.content
    stored = Booking.objects.get(pk=made.json()["id"])
    assert (stored.start, stored.end, stored.booked_end) == (
        start,
        start + timedelta(minutes=10),
        start + timedelta(minutes=10),
    )
    assert stored.user_id == lab.student.pk and stored.experiment_id == lab.pend00.pk
    assert stored.status == "booked" and stored.cancel_reason == ""
    assert stored.started_at is None and stored.cancelled_at is None
    assert stored.reference == made.json()["reference"]
