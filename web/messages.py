"""What the students' pages say. Tests import these constants."""

from booking.errors import MESSAGES

JOINED = "You joined {group}."
GUEST_WELCOME = (
    "Welcome, {name}: you joined {group} as a guest. Your booking confirmations go to "
    "{email}; keep their reference to find a booking later."
)
FEED_CREATED = "Your calendar feed address is ready."
FEED_ROTATED = "Your calendar feed has a new address; the old one no longer works."
LOOKUP_NOT_FOUND = "No booking matches that reference and last name."
JOIN_CODE_INVALID = MESSAGES["bad_access_code"]
