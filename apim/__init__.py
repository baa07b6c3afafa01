"""apim: the Django project and the core domain (tenancy, API catalog, audit)."""

from .celery import app as celery_app

__all__ = ["celery_app"]
