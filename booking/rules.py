"""Pure booking rules: no ORM, no clock; every input is passed in."""

import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from booking.errors import ApiError, rule_error

Interval = tuple[datetime, datetime]

REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
REFERENCE_LENGTH = 6


@dataclass(frozen=True)
class Policy:
    min_duration: int
    max_duration: int
    book_ahead: int
    start_in_past: int
    max_bookings: int
    grace_period: int
    extend_step: int
    max_extension: int
    quota_period: int | None = None
    quota_limit: int | None = None

    def as_dict(self) -> dict:
        quota = None
        if self.quota_period and self.quota_limit is not None:
            quota = {"period": self.quota_period, "limit": self.quota_limit}
        return {
            "min_duration": self.min_duration,
            "max_duration": self.max_duration,
            "book_ahead": self.book_ahead,
            "start_in_past": self.start_in_past,
            "max_bookings": self.max_bookings,
            "grace_period": self.grace_period,
            "extend_step": self.extend_step,
            "max_extension": self.max_extension,
            "quota": quota,
        }


# Each character of a reference is 5 random bits, the alphabet having 32 characters: all of
# a reference's bits come from one read of the system's randomness (secrets.choice reads it
# once or more per character, each a system call on the booking path).
_BITS = 5
assert len(REFERENCE_ALPHABET) == 1 << _BITS


def new_reference() -> str:
    bits = secrets.randbits(_BITS * REFERENCE_LENGTH)
    mask = (1 << _BITS) - 1
    return "".join(
        REFERENCE_ALPHABET[(bits >> (_BITS * place)) & mask] for place in range(REFERENCE_LENGTH)
    )


def normalise_reference(raw: str) -> str:
    return raw.strip().upper()


# --- durations ("30s", "5m", "2h", "7d") ---------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")


def parse_duration(value: str | int) -> int:
    """Seconds from a duration like 5m; a bare integer is seconds."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value}")
        return value
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration (use 30s, 5m, 2h or 7d): {value!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def format_duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def describe_duration(seconds: int) -> str:
    """Plain words for people: 1 hour 30 minutes."""
    parts = []
    for name, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {name}{'s' if count != 1 else ''}")
    return " ".join(parts) or "0 minutes"


# --- the rules -------------------------------------------------------------------------------


def check_times(policy: Policy, *, now: datetime, start: datetime, end: datetime) -> None:
    if start < now - timedelta(seconds=policy.start_in_past):
        raise rule_error("start_in_past")
    if start > now + timedelta(seconds=policy.book_ahead):
        raise rule_error("too_far_ahead")
    length = (end - start).total_seconds()
    if length < policy.min_duration:
        raise rule_error("too_short")
    if length > policy.max_duration:
        raise rule_error("too_long")


def covered(interval: Interval, by: Iterable[Interval]) -> bool:
    """Whether the union of `by` covers the whole of `interval`."""
    cursor, end = interval
    for s, e in sorted(by):
        if s > cursor:
            break
        if e > cursor:
            cursor = e
        if cursor >= end:
            return True
    return cursor >= end


def overlaps(a: Interval, b: Interval) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def check_windows(
    interval: Interval, *, allowed: Sequence[Interval], denied: Sequence[Interval]
) -> None:
    """With allowed windows, the booking must lie inside them; it may never touch a denied one."""
    if allowed and not covered(interval, allowed):
        raise rule_error("outside_window")
    if any(overlaps(interval, window) for window in denied):
        raise rule_error("outside_window")


def check_max_bookings(policy: Policy, *, held: int) -> None:
    if held >= policy.max_bookings:
        raise rule_error("max_bookings")


def counted_interval(
    *, start: datetime, end: datetime, status: str, cancelled_at: datetime | None
) -> Interval | None:
    """The part of a booking that counts against the quota.

    Cancelled before its start: nothing. Cancelled while running: up to the cancellation.
    Everything else (booked, started, ended, no-show) counts in full.
    """
    if status == "cancelled":
        if cancelled_at is None or cancelled_at <= start:
            return None
        return (start, min(end, cancelled_at))
    return (start, end)


def quota_peak(intervals: Sequence[Interval], *, period: int, around: Interval) -> float:
    """The most booked seconds in any window of `period` seconds that overlaps `around`.

    The booked time inside [t, t + period) is piecewise linear in t, so its maximum is
    reached where a window edge meets an interval edge: t = some start, or t + period =
    some end. Only windows touching `around` matter to a new booking.
    """
    span = timedelta(seconds=period)
    candidates = {s for s, _ in intervals} | {e - span for _, e in intervals}
    lo, hi = around[0] - span, around[1]
    best = 0.0
    for t in candidates:
        if not lo <= t <= hi:
            continue
        window = (t, t + span)
        total = 0.0
        for s, e in intervals:
            overlap = (min(e, window[1]) - max(s, window[0])).total_seconds()
            if overlap > 0:
                total += overlap
        best = max(best, total)
    return best


def check_quota(
    policy: Policy, *, existing: Sequence[Interval], new: Interval, already_counted: bool = False
) -> None:
    """`existing` must not include `new` unless already_counted (an extension's new part)."""
    if not policy.quota_period or policy.quota_limit is None:
        return
    intervals = list(existing) if already_counted else [*existing, new]
    if quota_peak(intervals, period=policy.quota_period, around=new) > policy.quota_limit:
        raise rule_error("quota_exceeded")


def check_extension(
    policy: Policy, *, booked_end: datetime, end: datetime, seconds: int
) -> datetime:
    """The new end of an extension by `seconds`, or the refusal."""
    if seconds <= 0 or seconds % policy.extend_step:
        raise ApiError(
            "invalid",
            f"Extensions come in steps of {policy.extend_step // 60} minutes.",
            400,
        )
    new_end = end + timedelta(seconds=seconds)
    if (new_end - booked_end).total_seconds() > policy.max_extension:
        raise rule_error("extension_limit")
    return new_end


def free_intervals(span: Interval, busy: Iterable[Interval]) -> list[Interval]:
    """The parts of `span` not covered by any busy interval."""
    free: list[Interval] = []
    cursor, end = span
    for s, e in sorted(busy):
        if e <= cursor:
            continue
        if s >= end:
            break
        if s > cursor:
            free.append((cursor, s))
        cursor = max(cursor, e)
        if cursor >= end:
            break
    if cursor < end:
        free.append((cursor, end))
    return free


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Intersection of two sorted lists of disjoint intervals."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        s = max(a[i][0], b[j][0])
        e = min(a[i][1], b[j][1])
        if s < e:
            out.append((s, e))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def union(intervals: Iterable[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out
