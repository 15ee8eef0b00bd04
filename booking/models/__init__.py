from booking.models.audit import AuditEntry
from booking.models.bookings import Booking, BookingStatus
from booking.models.catalogue import (
    UI,
    Experiment,
    Group,
    Pool,
    Relay,
    Stream,
    UISet,
    Window,
    WindowKind,
)

__all__ = [
    "UI",
    "AuditEntry",
    "Booking",
    "BookingStatus",
    "Experiment",
    "Group",
    "Pool",
    "Relay",
    "Stream",
    "UISet",
    "Window",
    "WindowKind",
]
