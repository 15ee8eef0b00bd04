"""A pool's policy in plain words."""

import pytest

from booking.rules import Policy
from web import policy_text

BASE = dict(
    min_duration=300,
    max_duration=1800,
    book_ahead=7 * 86400,
    start_in_past=120,
    max_bookings=2,
    grace_period=300,
    extend_step=300,
    max_extension=900,
)


def policy(**changes) -> Policy:
    return Policy(**{**BASE, **changes})


@pytest.mark.parametrize(
    ("changes", "function", "expected"),
    [
        ({}, policy_text.duration_limits, "A booking lasts from 5 minutes to 30 minutes."),
        (
            {"min_duration": 3600, "max_duration": 3600},
            policy_text.duration_limits,
            "Every booking lasts exactly 1 hour.",
        ),
        (
            {"max_duration": 5400},
            policy_text.duration_limits,
            "A booking lasts from 5 minutes to 1 hour 30 minutes.",
        ),
        ({}, policy_text.book_ahead, "You can book up to 7 days ahead."),
        ({"book_ahead": 3600}, policy_text.book_ahead, "You can book up to 1 hour ahead."),
        (
            {"max_bookings": 1},
            policy_text.max_bookings,
            "You can hold 1 current or upcoming booking in this pool at a time.",
        ),
        ({}, policy_text.quota, policy_text.NO_QUOTA),
        ({"max_extension": 0}, policy_text.extension, policy_text.NO_EXTENSION),
        (
            {},
            policy_text.extension,
            "While it runs, you can extend a booking in steps of 5 minutes, by up to "
            "15 minutes in all, when nobody has booked the experiment straight after you.",
        ),
        (
            {},
            policy_text.grace_period,
            "Start your session within 5 minutes of the booked start, or the booking is "
            "released for others.",
        ),
        (
            {"start_in_past": 0},
            policy_text.start_now,
            "A booking cannot start in the past: pick the current minute or later.",
        ),
    ],
)
def test_each_rule_reads_plainly(changes, function, expected):
    assert function(policy(**changes)) == expected


def test_a_quota_names_its_period_and_limit():
    text = policy_text.quota(policy(quota_period=7 * 86400, quota_limit=2 * 3600))
    assert text.startswith("In any 7 days you can book at most 2 hours in total")


def test_every_rule_is_explained():
    assert len(policy_text.policy_sentences(policy())) == 7
