from celery import shared_task
from django.utils import timezone


@shared_task(name="relay_control.tasks.deliver_due", ignore_result=True)
def deliver_due() -> dict:
    from relay_control.push import deliver_due as sweep

    return sweep(now=timezone.now())
