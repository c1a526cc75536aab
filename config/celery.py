import os

from celery import Celery

from ops.worker import WorkerHeartbeat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Each worker writes a heartbeat from its consumer, for /readyz and `manage.py health worker`.
app.steps["consumer"].add(WorkerHeartbeat)
