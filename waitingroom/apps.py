from django.apps import AppConfig


class WaitingroomConfig(AppConfig):
    name = "waitingroom"
    verbose_name = "Waiting room"

    def ready(self):
        from . import receivers  # noqa: F401
