"""The Celery application. Configuration comes from Django settings (``CELERY_*``)."""

import gc
import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _freeze(**kwargs):
    """What a worker process loaded at start stays out of the garbage
    collector's full collections, as in the web processes (``portal.wsgi``)."""
    gc.freeze()
