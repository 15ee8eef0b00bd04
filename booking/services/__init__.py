from booking.services.bookings import (
    booking_cancel,
    booking_create,
    booking_extend,
    experiment_in_service_locked,
    experiment_service_turn_take,
    experiment_slots_turn_take,
)
from booking.services.groups import group_access_code_rotate, group_join
from booking.services.guests import guest_create, guest_join
from booking.services.sweep import booking_sweep

__all__ = [
    "booking_cancel",
    "booking_create",
    "booking_extend",
    "booking_sweep",
    "experiment_in_service_locked",
    "experiment_service_turn_take",
    "experiment_slots_turn_take",
    "group_access_code_rotate",
    "group_join",
    "guest_create",
    "guest_join",
]
