"""The pure booking rules, table by table."""

from datetime import UTC, datetime, timedelta

import pytest

from booking import rules
from booking.errors import ApiError

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
POLICY = rules.Policy(
    min_duration=300,
    max_duration=1800,
    book_ahead=86400,
    start_in_past=120,
    max_bookings=2,
    grace_period=300,
    extend_step=300,
    max_extension=900,
    quota_period=3600,
    quota_limit=2400,
)


def m(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("start", "end", "code"),
    [
        (m(0), m(10), None),
        (m(-2), m(10), None),  # exactly the tolerance
        (m(-2.1), m(10), "start_in_past"),
        (m(24 * 60), m(24 * 60 + 10), None),  # exactly book_ahead
        (m(24 * 60 + 1), m(24 * 60 + 11), "too_far_ahead"),
        (m(0), m(5), None),  # exactly min
        (m(0), m(4.9), "too_short"),
        (m(0), m(30), None),  # exactly max
        (m(0), m(30.1), "too_long"),
        (m(0), m(60 * 24 * 365 * 50), "too_long"),
    ],
)
def test_check_times(start, end, code):
    if code is None:
        rules.check_times(POLICY, now=T0, start=start, end=end)
    else:
        with pytest.raises(ApiError) as caught:
            rules.check_times(POLICY, now=T0, start=start, end=end)
        assert caught.value.code == code


@pytest.mark.parametrize(
    ("allowed", "denied", "interval", "ok"),
    [
        ([], [], (m(0), m(10)), True),
        ([(m(-60), m(60))], [], (m(0), m(10)), True),
        ([(m(-60), m(5))], [], (m(0), m(10)), False),  # runs past the allowed window
        ([(m(-60), m(5)), (m(5), m(60))], [], (m(0), m(10)), True),  # adjoining windows
        ([(m(-60), m(5)), (m(6), m(60))], [], (m(0), m(10)), False),  # a gap
        ([(m(20), m(60))], [], (m(0), m(10)), False),
        ([], [(m(9), m(20))], (m(0), m(10)), False),  # touches a blackout
        ([], [(m(10), m(20))], (m(0), m(10)), True),  # half-open: ends as it starts
        ([], [(m(-10), m(0))], (m(0), m(10)), True),
        ([(m(-60), m(60))], [(m(2), m(3))], (m(0), m(10)), False),
    ],
)
def test_check_windows(allowed, denied, interval, ok):
    if ok:
        rules.check_windows(interval, allowed=allowed, denied=denied)
    else:
        with pytest.raises(ApiError) as caught:
            rules.check_windows(interval, allowed=allowed, denied=denied)
        assert caught.value.code == "outside_window"


@pytest.mark.parametrize(("held", "ok"), [(0, True), (1, True), (2, False), (5, False)])
def test_check_max_bookings(held, ok):
    if ok:
        rules.check_max_bookings(POLICY, held=held)
    else:
        with pytest.raises(ApiError, match="max_bookings"):
            rules.check_max_bookings(POLICY, held=held)


@pytest.mark.parametrize(
    ("status", "cancelled_at", "expected"),
    [
        ("booked", None, (m(0), m(30))),
        ("ended", None, (m(0), m(30))),
        ("no_show", None, (m(0), m(30))),
        ("cancelled", m(-5), None),  # before the start: refunded
        ("cancelled", m(0), None),
        ("cancelled", m(10), (m(0), m(10))),  # while running: up to the cancellation
    ],
)
def test_counted_interval(status, cancelled_at, expected):
    assert (
        rules.counted_interval(start=m(0), end=m(30), status=status, cancelled_at=cancelled_at)
        == expected
    )


@pytest.mark.parametrize(
    ("existing", "new", "ok"),
    [
        ([], (m(0), m(30)), True),
        ([(m(-30), m(0))], (m(0), m(10)), True),  # 40 minutes in the hour: exactly the limit
        ([(m(-30), m(0))], (m(0), m(15)), False),  # 45 minutes within one hour
        ([(m(-90), m(-60))], (m(0), m(30)), True),  # an hour apart: separate windows
        ([(m(-70), m(-45))], (m(0), m(20)), True),  # 25 + 20 never share an hour window
        ([(m(-50), m(-25))], (m(0), m(20)), True),  # at most 35 minutes share an hour
        ([(m(-40), m(-15))], (m(0), m(20)), False),  # 25 + 20 within [-40, 20)
        ([(m(40), m(60))], (m(0), m(25)), False),  # a future booking counts too
    ],
)
def test_check_quota_over_a_rolling_period(existing, new, ok):
    if ok:
        rules.check_quota(POLICY, existing=existing, new=new)
    else:
        with pytest.raises(ApiError, match="quota_exceeded"):
            rules.check_quota(POLICY, existing=existing, new=new)


def test_quota_is_not_checked_without_a_quota():
    policy = rules.Policy(**{**POLICY.__dict__, "quota_period": None, "quota_limit": None})
    rules.check_quota(policy, existing=[(m(0), m(600))], new=(m(600), m(1200)))


@pytest.mark.parametrize(
    ("end", "seconds", "result"),
    [
        (m(30), 300, m(35)),
        (m(30), 900, m(45)),  # exactly the maximum extension
        (m(30), 1200, "extension_limit"),
        (m(40), 600, "extension_limit"),  # already extended by 10 minutes
        (m(30), 200, "invalid"),  # not a multiple of the step
        (m(30), 0, "invalid"),
        (m(30), -300, "invalid"),
    ],
)
def test_check_extension(end, seconds, result):
    if isinstance(result, datetime):
        assert rules.check_extension(POLICY, booked_end=m(30), end=end, seconds=seconds) == result
    else:
        with pytest.raises(ApiError) as caught:
            rules.check_extension(POLICY, booked_end=m(30), end=end, seconds=seconds)
        assert caught.value.code == result


@pytest.mark.parametrize(
    ("busy", "free"),
    [
        ([], [(m(0), m(60))]),
        ([(m(10), m(20))], [(m(0), m(10)), (m(20), m(60))]),
        ([(m(-10), m(5)), (m(50), m(70))], [(m(5), m(50))]),
        ([(m(10), m(20)), (m(15), m(30))], [(m(0), m(10)), (m(30), m(60))]),
        ([(m(-10), m(70))], []),
    ],
)
def test_free_intervals(busy, free):
    assert rules.free_intervals((m(0), m(60)), busy) == free


def test_intersect_and_union():
    a = [(m(0), m(10)), (m(20), m(30))]
    b = [(m(5), m(25))]
    assert rules.intersect(a, b) == [(m(5), m(10)), (m(20), m(25))]
    assert rules.union([(m(20), m(30)), (m(0), m(10)), (m(10), m(15))]) == [
        (m(0), m(15)),
        (m(20), m(30)),
    ]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("2h", 7200), ("7d", 604800), (" 10m ", 600), (90, 90)],
)
def test_parse_duration(text, seconds):
    assert rules.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5", "5x", "m5", "-5m", "1.5h", "", True, -3])
def test_parse_duration_refuses_garbage(text):
    with pytest.raises(ValueError):
        rules.parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [(30, "30s"), (300, "5m"), (7200, "2h"), (90, "90s")])
def test_format_duration(seconds, text):
    assert rules.format_duration(seconds) == text


def test_references_use_the_unambiguous_alphabet():
    refs = {rules.new_reference() for _ in range(500)}
    assert len(refs) > 490
    assert all(len(r) == 6 and set(r) <= set(rules.REFERENCE_ALPHABET) for r in refs)
    assert not set("01OI") & set(rules.REFERENCE_ALPHABET)


def test_every_character_turns_up_in_every_place_of_a_reference():
    refs = [rules.new_reference() for _ in range(3000)]
    for place in range(rules.REFERENCE_LENGTH):
        assert {ref[place] for ref in refs} == set(rules.REFERENCE_ALPHABET), place
