from celery import shared_task


@shared_task(name="booking.tasks.sweep", ignore_result=True)
def sweep() -> dict:
    from config.jobs import run_periodic_jobs

    return run_periodic_jobs()
