"""Reading a pool's policy into the pure rules' dataclass."""

from booking.models import Pool
from booking.rules import Policy

POLICY_FIELDS = (
    "min_duration",
    "max_duration",
    "book_ahead",
    "start_in_past",
    "max_bookings",
    "grace_period",
    "extend_step",
    "max_extension",
    "quota_period",
    "quota_limit",
)


def pool_policy(pool: Pool) -> Policy:
    return Policy(**{name: getattr(pool, name) for name in POLICY_FIELDS})
