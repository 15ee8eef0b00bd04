"""Usage reports: per experiment and per pool, over a period.

A booking belongs to the period [start, end) when it starts in it. For those bookings:

- bookings: how many (every status, cancelled ones included);
- hours used: the time that counts as in the quota (booking.rules.counted_interval):
  nothing for a booking cancelled before its start, up to the cancellation for one
  cancelled while running, the whole booking otherwise (a no-show included);
- no-shows and cancellations: how many ended that way.

Every experiment and every pool gets a row, unused ones too.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from booking import rules
from booking.models import Booking, BookingStatus, Experiment, Pool

CSV_HEADER = ("kind", "slug", "title", "bookings", "hours_used", "no_shows", "cancellations")


@dataclass
class UsageRow:
    slug: str
    title: str
    bookings: int = 0
    seconds: float = 0.0
    no_shows: int = 0
    cancellations: int = 0

    @property
    def hours(self) -> float:
        return round(self.seconds / 3600, 2)

    def add(self, *, status: str, seconds: float) -> None:
        self.bookings += 1
        self.seconds += seconds
        self.no_shows += status == BookingStatus.NO_SHOW
        self.cancellations += status == BookingStatus.CANCELLED


@dataclass
class UsageReport:
    start: datetime
    end: datetime
    experiments: list[UsageRow] = field(default_factory=list)
    pools: list[UsageRow] = field(default_factory=list)

    @property
    def total(self) -> UsageRow:
        """All bookings once (a booking is in one pool, so the pool rows add up)."""
        total = UsageRow("total", "All pools")
        for row in self.pools:
            total.bookings += row.bookings
            total.seconds += row.seconds
            total.no_shows += row.no_shows
            total.cancellations += row.cancellations
        return total


def counted_seconds(
    *, start: datetime, end: datetime, status: str, cancelled_at: datetime | None
) -> float:
    part = rules.counted_interval(start=start, end=end, status=status, cancelled_at=cancelled_at)
    return 0.0 if part is None else (part[1] - part[0]).total_seconds()


def _rows(model: type[Experiment] | type[Pool]) -> dict[int, UsageRow]:
    rows = model.objects.order_by("slug").values_list("pk", "slug", "title")
    return {pk: UsageRow(slug, title) for pk, slug, title in rows}


def usage_report(*, start: datetime, end: datetime) -> UsageReport:
    """Usage of every experiment and pool by the bookings that start in [start, end)."""
    experiments = _rows(Experiment)
    pools = _rows(Pool)
    rows = Booking.objects.filter(start__gte=start, start__lt=end).values_list(
        "experiment_id", "pool_id", "start", "end", "status", "cancelled_at"
    )
    for experiment_id, pool_id, b_start, b_end, status, cancelled_at in rows.iterator():
        seconds = counted_seconds(
            start=b_start, end=b_end, status=status, cancelled_at=cancelled_at
        )
        experiments[experiment_id].add(status=status, seconds=seconds)
        pools[pool_id].add(status=status, seconds=seconds)
    return UsageReport(start, end, list(experiments.values()), list(pools.values()))


def usage_csv_rows(report: UsageReport) -> Iterable[tuple]:
    """The report as CSV rows, header first; hours with two decimals."""
    yield CSV_HEADER
    for kind, rows in (("experiment", report.experiments), ("pool", report.pools)):
        for row in rows:
            yield (
                kind,
                row.slug,
                row.title,
                row.bookings,
                f"{row.hours:.2f}",
                row.no_shows,
                row.cancellations,
            )
