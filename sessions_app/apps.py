from django.apps import AppConfig


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    verbose_name = "Sessions and tokens"

    def ready(self) -> None:
        from sessions_app import schema  # noqa: F401  (registers the OpenAPI extension)
