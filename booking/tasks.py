from celery import shared_task


@shared_task(name="booking.tasks.sweep", ignore_result=True)
def sweep() -> dict:
    from config.jobs import run_periodic_jobs

    return run_periodic_jobs()


@shared_task(name="booking.tasks.send_confirmation", ignore_result=True)
def send_confirmation(booking_id: str) -> bool:
    from django.utils import timezone

    from booking.notifications import booking_confirmation_send

    return booking_confirmation_send(booking_id, now=timezone.now())
