"""The test suite. Honours ``DATABASE_URL`` and ``REDIS_URL`` so CI can run it
against real PostgreSQL and Redis as well as on the embedded defaults."""

import os

os.environ.setdefault("APIM_DATA_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "var", "test"))

from .base import *
from .base import CACHES, DATABASES, REDIS_URL

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
# Test upstreams run on loopback; the SSRF tests turn this off where they need to.
APIM_ALLOW_PRIVATE_TARGETS = True
DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"].pop("CONN_HEALTH_CHECKS", None)
if REDIS_URL:
    # Keep test keys apart from anything else on a shared Redis.
    CACHES["default"]["KEY_PREFIX"] = "apim-test"
    APIM_RATELIMIT_KEY_PREFIX = "apim-test:rl:"
    # Gateways started by tests record usage here (tests that read records use a stream of their own).
    APIM_USAGE_STREAM = "apim-test:usage"
    APIM_USAGE_STREAM_MAXLEN = 1000
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "root": {"handlers": ["null"], "level": "DEBUG"},
}
