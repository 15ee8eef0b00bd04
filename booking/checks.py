"""System checks for set-ups that would silently misbehave."""

from django.conf import settings
from django.core.checks import Error, register


@register()
def channel_layer_check(app_configs, **kwargs) -> list[Error]:  # noqa: ARG001
    backend = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
    if "InMemoryChannelLayer" not in backend:
        return []
    errors = []
    if settings.CELERY_BROKER_URL:
        errors.append(
            Error(
                "The in-memory channel layer cannot carry events from Celery workers.",
                hint="Set REDIS_URL when CELERY_BROKER_URL is set.",
                id="platform.E001",
            )
        )
    if settings.WEB_PROCESSES > 1:
        errors.append(
            Error(
                "The in-memory channel layer works inside one web process only.",
                hint="Set REDIS_URL when WEB_PROCESSES is more than 1.",
                id="platform.E002",
            )
        )
    return errors
