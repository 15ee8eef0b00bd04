"""A pool's policy in plain words, for the pool page. Pure functions of the Policy."""

from booking.rules import Policy, describe_duration

NO_EXTENSION = "Bookings in this pool cannot be extended."
NO_QUOTA = "There is no limit on your total booked time."


def duration_limits(policy: Policy) -> str:
    low, high = describe_duration(policy.min_duration), describe_duration(policy.max_duration)
    if policy.min_duration == policy.max_duration:
        return f"Every booking lasts exactly {low}."
    return f"A booking lasts from {low} to {high}."


def book_ahead(policy: Policy) -> str:
    return f"You can book up to {describe_duration(policy.book_ahead)} ahead."


def start_now(policy: Policy) -> str:
    if not policy.start_in_past:
        return "A booking cannot start in the past: pick the current minute or later."
    return (
        f"To book right now, pick the current time: a start up to "
        f"{describe_duration(policy.start_in_past)} ago is accepted."
    )


def max_bookings(policy: Policy) -> str:
    count = policy.max_bookings
    noun = "booking" if count == 1 else "bookings"
    return f"You can hold {count} current or upcoming {noun} in this pool at a time."


def quota(policy: Policy) -> str:
    if not policy.quota_period or policy.quota_limit is None:
        return NO_QUOTA
    return (
        f"In any {describe_duration(policy.quota_period)} you can book at most "
        f"{describe_duration(policy.quota_limit)} in total; a booking cancelled before it "
        f"starts does not count."
    )


def grace_period(policy: Policy) -> str:
    return (
        f"Start your session within {describe_duration(policy.grace_period)} of the booked "
        f"start, or the booking is released for others."
    )


def extension(policy: Policy) -> str:
    if not policy.max_extension:
        return NO_EXTENSION
    return (
        f"While it runs, you can extend a booking in steps of "
        f"{describe_duration(policy.extend_step)}, by up to "
        f"{describe_duration(policy.max_extension)} in all, when nobody has booked the "
        f"experiment straight after you."
    )


def policy_sentences(policy: Policy) -> list[str]:
    return [
        duration_limits(policy),
        book_ahead(policy),
        start_now(policy),
        max_bookings(policy),
        quota(policy),
        grace_period(policy),
        extension(policy),
    ]
