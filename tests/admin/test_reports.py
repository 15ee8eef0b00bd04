"""Usage reports: exact figures for a small week of bookings, the CSV, the admin page."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from booking.admin_pages import bar_chart
from booking.models import BookingStatus
from booking.reports import CSV_HEADER, usage_csv_rows, usage_report
from tests.admin import persona_user
from tests.conftest import client_for
from tests.factories import make_booking

WEEK_START = datetime(2026, 3, 1, tzinfo=UTC)
WEEK_END = datetime(2026, 3, 8, tzinfo=UTC)  # the report's end is exclusive


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def week(lab):
    """Bookings in the week of 1-7 March 2026, and some just outside it."""
    spin00 = lab.other_pool.experiments.get()
    s, pool = lab.student, lab.pool
    make_booking(s, pool, lab.pend00, at(2, 9), 30, status=BookingStatus.ENDED)
    make_booking(s, pool, lab.pend00, at(2, 11), 20, status=BookingStatus.NO_SHOW)
    make_booking(
        s, pool, lab.pend00, at(3, 9), 30, status="cancelled", cancelled_at=at(2, 18)
    )  # before its start: counts nothing
    make_booking(
        s, pool, lab.pend01, at(3, 10), 30, status="cancelled", cancelled_at=at(3, 10, 12)
    )  # while running: 12 minutes
    make_booking(s, pool, lab.pend01, at(6, 14), 60)
    make_booking(s, lab.other_pool, spin00, at(4, 15), 45, status=BookingStatus.ENDED)
    make_booking(s, pool, lab.pend00, at(7, 23, 50), 30)  # starts in the week: counts in full
    make_booking(s, pool, lab.pend00, at(1, 0) - timedelta(minutes=10), 30)  # before
    make_booking(s, pool, lab.pend00, at(8, 1), 30)  # after


def rows(report, kind: str) -> dict[str, tuple]:
    return {
        r.slug: (r.bookings, r.seconds, r.hours, r.no_shows, r.cancellations)
        for r in getattr(report, kind)
    }


def test_usage_per_experiment_and_per_pool(week):
    report = usage_report(start=WEEK_START, end=WEEK_END)
    assert rows(report, "experiments") == {
        "dev00": (0, 0.0, 0.0, 0, 0),
        "pend00": (4, 80 * 60.0, 1.33, 1, 1),
        "pend01": (2, 72 * 60.0, 1.2, 0, 1),
        "spin00": (1, 45 * 60.0, 0.75, 0, 0),
    }
    assert rows(report, "pools") == {
        "others": (1, 45 * 60.0, 0.75, 0, 0),
        "pendulums": (6, 152 * 60.0, 2.53, 1, 2),
    }
    total = report.total
    assert (total.bookings, total.seconds, total.no_shows, total.cancellations) == (
        7,
        197 * 60.0,
        1,
        2,
    )


def test_an_empty_period_reports_every_experiment_with_zeros(week):
    report = usage_report(start=at(20, 0), end=at(21, 0))
    assert {r.bookings for r in report.experiments + report.pools} == {0}
    assert len(report.experiments) == 4 and len(report.pools) == 2


def test_the_csv_has_the_same_figures(week):
    lines = [
        tuple(map(str, row)) for row in usage_csv_rows(usage_report(start=WEEK_START, end=WEEK_END))
    ]
    assert lines == [
        CSV_HEADER,
        ("experiment", "dev00", "Dev00", "0", "0.00", "0", "0"),
        ("experiment", "pend00", "Pend00", "4", "1.33", "1", "1"),
        ("experiment", "pend01", "Pend01", "2", "1.20", "0", "1"),
        ("experiment", "spin00", "Spin00", "1", "0.75", "0", "0"),
        ("pool", "others", "Others", "1", "0.75", "0", "0"),
        ("pool", "pendulums", "Pendulums", "6", "2.53", "1", "2"),
    ]


def test_the_chart_scales_bars_to_the_busiest(week):
    chart = bar_chart(usage_report(start=WEEK_START, end=WEEK_END).pools)
    assert [(b["label"], b["width"]) for b in chart["bars"]] == [
        ("others", round(420 * 0.75 / 2.53, 1)),
        ("pendulums", 420),
    ]


def test_the_report_page_shows_tables_chart_and_a_csv_download(lab, week):
    client = client_for(persona_user(lab, "lab_manager"))
    url = reverse("admin:booking_booking_report")
    page = client.get(url, {"start": "2026-03-01", "end": "2026-03-07"})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="usage-experiment"' in html and 'id="usage-pool"' in html
    assert html.count('<svg class="lab-chart"') == 2 and "2.53 h" in html
    assert page.context["report"].total.bookings == 7

    download = client.get(url, {"start": "2026-03-01", "end": "2026-03-07", "format": "csv"})
    assert download["Content-Type"].startswith("text/csv")
    assert 'filename="usage-20260301-20260307.csv"' in download["Content-Disposition"]
    table = list(csv.reader(io.StringIO(download.content.decode())))
    assert table[0] == list(CSV_HEADER)
    assert table[2] == ["experiment", "pend00", "Pend00", "4", "1.33", "1", "1"]
    assert len(table) == 7


def test_the_report_page_refuses_a_backwards_period(lab):
    client = client_for(persona_user(lab, "lab_manager"))
    page = client.get(
        reverse("admin:booking_booking_report"), {"start": "2026-03-07", "end": "2026-03-01"}
    )
    assert page.status_code == 200 and "report" not in page.context
    assert "The end must not be before the start." in page.content.decode()


def test_the_admin_index_links_the_report_for_those_who_may_see_it(lab):
    index = reverse("admin:index")
    report = reverse("admin:booking_booking_report")
    assert report in client_for(persona_user(lab, "lab_manager")).get(index).content.decode()
    assert report not in client_for(persona_user(lab, "pool_manager")).get(index).content.decode()
