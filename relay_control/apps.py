from django.apps import AppConfig


class RelayControlConfig(AppConfig):
    name = "relay_control"
    verbose_name = "Relay control"
