"""The hand-written statements of the booking hot path stay in step with the models."""

import re
from datetime import datetime, timedelta

from django.utils import timezone

from booking.models import Booking
from booking.sql import INSERT_SQL


def book(client, lab, start: datetime):
    """A ten-minute booking of pend00 through the API; its response."""
    return client.post(
        "/api/v1/bookings/",
        {
            "pool": lab.pool.slug,
            "experiment": lab.pend00.slug,
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=10)).isoformat(),
        },
        content_type="application/json",
    )


def test_the_insert_names_every_column_of_a_booking():
    listed = re.search(r"\((.*?)\)\s*VALUES", INSERT_SQL, re.S).group(1)
    columns = {name.strip().strip('"') for name in listed.split(",")}
    assert columns == {field.column for field in Booking._meta.concrete_fields}


def test_a_booking_made_by_the_api_reads_back_like_one_made_by_the_orm(lab, student_client):
    start = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    made = book(student_client, lab, start)
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


def test_on_postgresql_the_hot_path_statements_are_prepared_once_per_connection(
    lab, student_client
):
    """PostgreSQL parses and plans the booking statements once per pooled connection: with
    server-side binding psycopg prepares a statement from its fifth run on a connection."""
    from django.db import connection

    from config.settings.env import PREPARE_THRESHOLD

    base = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    for n in range(PREPARE_THRESHOLD + 1):
        made = book(student_client, lab, base + timedelta(minutes=10 * n))
        assert made.status_code == 201, made.content
        cancelled = student_client.post(f"/api/v1/bookings/{made.json()['id']}/cancel/")
        assert cancelled.status_code == 200, cancelled.content
    options = connection.settings_dict["OPTIONS"]
    if connection.vendor != "postgresql":
        assert "prepare_threshold" not in options and "server_side_binding" not in options
        return
    assert options["server_side_binding"] is True
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any("FOR UPDATE" in text and "booking_pool" in text for text in prepared), prepared
    assert any("INSERT INTO booking_booking" in text for text in prepared), prepared
