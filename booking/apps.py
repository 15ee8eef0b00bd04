from django.apps import AppConfig


class BookingConfig(AppConfig):
    name = "booking"
    verbose_name = "Catalogue and bookings"

    def ready(self) -> None:
        from booking import checks  # noqa: F401
