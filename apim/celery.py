"""The Celery application. Workers and beat start with ``celery -A apim``."""

import os

from celery import Celery
from celery.signals import worker_init, worker_shutdown

from apim.settings.env import default_settings_module

os.environ.setdefault("DJANGO_SETTINGS_MODULE", default_settings_module())

app = Celery("apim")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect(weak=False)
def _start_tracing(**_: object) -> None:
    """Tracing for workers (off unless configured). In the main worker process, before the
    pool starts: the SDK's batch exporter restarts its thread in each forked child."""
    from apim.observability.tracing import instrument_django_process

    instrument_django_process("apim-worker")


@worker_shutdown.connect(weak=False)
def _stop_tracing(**_: object) -> None:
    from apim.observability.tracing import shutdown_tracing

    shutdown_tracing()
