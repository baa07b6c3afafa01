"""Production: tightens ``base`` and refuses to start on an insecure default.

It adds no features. Every refusal says which variable to set, so a broken
deployment fails at boot with a readable message instead of running unsafely.
"""

from django.core.exceptions import ImproperlyConfigured

from apim.observability.logs import logging_config

from .base import *
from .base import ALLOWED_HOSTS, APIM_KEY_PEPPERS, DATABASES, DEBUG, LOG_LEVEL, REDIS_URL, SECRET_KEY
from .env import env

_problems: list[str] = []
if DEBUG:
    _problems.append("DEBUG must be off in production (unset DEBUG or set DEBUG=false)")
if not SECRET_KEY or len(SECRET_KEY) < 50 or SECRET_KEY.startswith("django-insecure"):
    _problems.append("SECRET_KEY must be set to a random value of at least 50 characters")
if not APIM_KEY_PEPPERS:
    _problems.append("API_KEY_PEPPER must be set (the server-side secret API keys are hashed with)")
elif any(len(value) < 32 for value in APIM_KEY_PEPPERS.values()):
    _problems.append("API_KEY_PEPPER (and API_KEY_OLD_PEPPERS) must be at least 32 characters")
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    _problems.append("DATABASE_URL must point at PostgreSQL (postgres://...) in production")
if not REDIS_URL:
    _problems.append("REDIS_URL must be set in production (cache, rate limits, config events)")
if not env.get_str("ALLOWED_HOSTS") or "*" in ALLOWED_HOSTS:
    _problems.append("ALLOWED_HOSTS must list the web hostnames explicitly (no '*')")
if (env.get_str("CELERY_BROKER_URL") or "filesystem://").startswith("filesystem://"):
    _problems.append("CELERY_BROKER_URL must point at Redis or RabbitMQ in production")
if _problems:
    raise ImproperlyConfigured("apim refuses to start in production mode:\n  - " + "\n  - ".join(_problems))

SESSION_COOKIE_SECURE = env.get_bool("SESSION_COOKIE_SECURE", True)
CSRF_COOKIE_SECURE = env.get_bool("CSRF_COOKIE_SECURE", True)
SECURE_SSL_REDIRECT = env.get_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env.get_int("SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.get_bool("BEHIND_TLS_PROXY", True) else None
WHITENOISE_USE_FINDERS = False
APIM_DEMO_ECHO = env.get_bool("APIM_DEMO_ECHO", False)
# Log aggregators read JSON lines; APIM_LOG_FORMAT=text still wins when set.
APIM_LOG_FORMAT = (env.get_str("APIM_LOG_FORMAT", "json") or "json").lower()
LOGGING = logging_config(APIM_LOG_FORMAT, LOG_LEVEL)
