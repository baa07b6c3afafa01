"""The Celery application. Workers and beat start with ``celery -A apim``."""

import os

from celery import Celery

from apim.settings.env import default_settings_module

os.environ.setdefault("DJANGO_SETTINGS_MODULE", default_settings_module())

app = Celery("apim")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
