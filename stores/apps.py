from django.apps import AppConfig


class StoresConfig(AppConfig):
    name = "stores"
    verbose_name = "Companies and stores"

    def ready(self):
        from . import taskruns  # noqa: F401  (Celery signals: task log lines, request id in tasks)
