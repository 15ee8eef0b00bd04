"""In the embedded default (no broker) the web process runs the periodic sweep itself."""

import logging
import threading

from django.conf import settings

log = logging.getLogger(__name__)
_started = threading.Event()


def _loop(stop: threading.Event) -> None:
    from config.jobs import run_periodic_jobs

    while not stop.wait(settings.JOB_INTERVAL_SECONDS):
        try:
            run_periodic_jobs()
        except Exception:  # a failed tick must not stop the next one
            log.exception("periodic jobs failed")


def start_in_process_jobs() -> threading.Event | None:
    if not settings.JOBS_IN_PROCESS or _started.is_set():
        return None
    _started.set()
    stop = threading.Event()
    threading.Thread(target=_loop, args=(stop,), name="periodic-jobs", daemon=True).start()
    log.info("periodic jobs run in-process every %ss", settings.JOB_INTERVAL_SECONDS)
    return stop
