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
from booking.models.notifications import EmailKind, EmailRecord

__all__ = [
    "UI",
    "AuditEntry",
    "Booking",
    "BookingStatus",
    "EmailKind",
    "EmailRecord",
    "Experiment",
    "Group",
    "Pool",
    "Relay",
    "Stream",
    "UISet",
    "Window",
    "WindowKind",
]
