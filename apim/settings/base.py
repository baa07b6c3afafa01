"""Complete settings for every environment; the others only tighten or adapt.

Everything variable comes from ``env`` (``apim/settings/env.py``).
"""

from __future__ import annotations

from datetime import timedelta

from .env import BASE_DIR, EnvError, env, parse_database_url

APIM_ENV = env.apim_env
DATA_DIR = env.data_dir

DEBUG = env.get_bool("DEBUG", False)

# Secrets. Local installs generate them once into the data folder; production
# settings refuse to start without them (see production.py).
_generate_secrets = APIM_ENV != "production"
SECRET_KEY = env.persistent_secret("SECRET_KEY", "secret_key", generate=_generate_secrets) or ""

# API keys are stored as HMAC-SHA256(pepper, key). The pepper lives outside the
# database so a leaked dump cannot be brute-forced. Old peppers stay listed so
# keys issued under them keep verifying while they are phased out.
APIM_KEY_PEPPER_ID = env.get_str("API_KEY_PEPPER_ID", "1") or "1"
APIM_KEY_PEPPERS: dict[str, str] = {}
for _item in env.get_list("API_KEY_OLD_PEPPERS"):
    _pid, _, _secret = _item.partition(":")
    if _pid and _secret:
        APIM_KEY_PEPPERS[_pid] = _secret
_current_pepper = env.persistent_secret("API_KEY_PEPPER", "api_key_pepper", generate=_generate_secrets)
if _current_pepper:
    APIM_KEY_PEPPERS[APIM_KEY_PEPPER_ID] = _current_pepper

# How long a rotated-out key keeps working, so clients can switch over.
APIM_KEY_ROTATION_GRACE = timedelta(seconds=env.get_int("API_KEY_ROTATION_GRACE_SECONDS", 24 * 3600))

ALLOWED_HOSTS = env.get_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.get_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "channels",
    "django_prometheus",
    "apim.apps.ApimConfig",
    "consumers.apps.ConsumersConfig",
    "policies.apps.PoliciesConfig",
    "analytics.apps.AnalyticsConfig",
    "gateway.apps.GatewayConfig",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "apim.observability.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "apim.urls"
ASGI_APPLICATION = "apim.asgi.application"
WSGI_APPLICATION = "apim.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env.get_str("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'apim.sqlite3'}"
DATABASES = {"default": parse_database_url(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.get_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.get_str("CACHE_KEY_PREFIX", "apim") or "apim",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            # Pub/sub: a config-changed event fans out to every gateway worker.
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "apim"},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "apim"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Celery: an embedded filesystem broker needs no server; production points at Redis or RabbitMQ.
_celery_dir = DATA_DIR / "celery"
CELERY_BROKER_URL = env.get_str("CELERY_BROKER_URL") or "filesystem://"
if CELERY_BROKER_URL == "filesystem://":
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_celery_dir / "queue"),
        "data_folder_out": str(_celery_dir / "queue"),
        "processed_folder": str(_celery_dir / "processed"),
        "control_folder": str(_celery_dir / "control"),
        "store_processed": False,
    }
    # kombu's filesystem transport does not create its folders: a producer would fail on the first send.
    for _folder in ("queue", "processed", "control"):
        (_celery_dir / _folder).mkdir(parents=True, exist_ok=True)
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on a missing root
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the app folders when collectstatic has not run (local use).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# Admin sign-in throttling (apim.admin.login_throttle): failures counted per user name and per
# address over a sliding window; past either limit sign-in answers 429 without checking the password.
APIM_LOGIN_MAX_FAILURES_PER_USER = env.get_int("APIM_LOGIN_MAX_FAILURES_PER_USER", 10)
APIM_LOGIN_MAX_FAILURES_PER_IP = env.get_int("APIM_LOGIN_MAX_FAILURES_PER_IP", 50)
APIM_LOGIN_FAILURE_WINDOW = env.get_int("APIM_LOGIN_FAILURE_WINDOW", 900)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apim.api.authentication.AccessTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "apim.api.permissions.TokenAllowsMethod",
    ],
    "DEFAULT_PAGINATION_CLASS": "apim.api.pagination.LimitOffsetPagination",
    "DEFAULT_THROTTLE_CLASSES": ["apim.api.throttling.UserThrottle", "apim.api.throttling.AnonThrottle"],
    "EXCEPTION_HANDLER": "apim.api.exceptions.envelope_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# REST API throttles (DRF rate syntax "N/period"); read per request, so tests and operators can change them.
APIM_API_THROTTLE_RATES = {
    "user": env.get_str("APIM_API_THROTTLE_USER", "1200/min") or "1200/min",
    "anon": env.get_str("APIM_API_THROTTLE_ANON", "60/min") or "60/min",
}
# Personal access tokens: default and longest lifetime.
APIM_ACCESS_TOKEN_DEFAULT_DAYS = env.get_int("APIM_ACCESS_TOKEN_DEFAULT_DAYS", 90)
APIM_ACCESS_TOKEN_MAX_DAYS = env.get_int("APIM_ACCESS_TOKEN_MAX_DAYS", 365)
# How long an Idempotency-Key's first response is replayed.
APIM_IDEMPOTENCY_TTL = timedelta(hours=env.get_int("APIM_IDEMPOTENCY_TTL_HOURS", 24))
# Largest OpenAPI document `apim_openapi_import` and POST /api/v1/apis/import-openapi/ accept.
APIM_OPENAPI_MAX_BYTES = env.get_int("APIM_OPENAPI_MAX_BYTES", 4 * 1024 * 1024)
SPECTACULAR_SETTINGS = {
    "TITLE": "apim management API",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "DESCRIPTION": (
        "Manage tenants, APIs, upstreams, consumers, keys, plans, subscriptions and policies. "
        "Authenticate with `Authorization: Bearer apimpat_…` (a personal access token) or a browser session; "
        "name the tenant with the `X-Apim-Tenant` header or `?tenant=`. Errors use the envelope "
        '`{"success": false, "error": {"code", "message", "details"}}`.'
    ),
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Where the built-in echo upstream is served (the demo API points at it).
APIM_DEMO_ECHO = env.get_bool("APIM_DEMO_ECHO", APIM_ENV != "production")
APIM_WEB_PORT = env.get_int("APIM_WEB_PORT", 8080)
APIM_GATEWAY_PORT = env.get_int("APIM_GATEWAY_PORT", 8081)
# Upstream targets and JWKS URLs on loopback, link-local (cloud metadata) or the gateway's own
# ports (apim/target_addresses.py): refused unless allowed. local.py and test.py allow them.
APIM_ALLOW_PRIVATE_TARGETS = env.get_bool("APIM_ALLOW_PRIVATE_TARGETS", False)

# Gateway (data plane).
# The upstream client library: "aiohttp" (default: measured fastest, see the README's
# benchmark) or "httpx". Both pass the same conformance suite.
APIM_GATEWAY_CLIENT = env.get_str("APIM_GATEWAY_CLIENT", "aiohttp") or "aiohttp"
# Proxies in front of the gateway whose X-Forwarded-For / Forwarded headers are believed.
APIM_TRUSTED_PROXIES = env.get_list("APIM_TRUSTED_PROXIES")
# How often each gateway worker compares the config fingerprint (the fallback to events).
APIM_GATEWAY_POLL_INTERVAL = float(env.get_str("APIM_GATEWAY_POLL_INTERVAL", "0.5") or "0.5")
# Bounds on a request head (gateway.http_protocol): request target → 414; header section
# bytes or lines → 431. nginx's defaults are in the same range (8 KiB lines, 32 KiB in all).
APIM_GATEWAY_MAX_URL_BYTES = env.get_int("APIM_GATEWAY_MAX_URL_BYTES", 8 * 1024)
APIM_GATEWAY_MAX_HEADER_BYTES = env.get_int("APIM_GATEWAY_MAX_HEADER_BYTES", 32 * 1024)
APIM_GATEWAY_MAX_HEADERS = env.get_int("APIM_GATEWAY_MAX_HEADERS", 100)
# The gateway's youngest-generation GC threshold (CPython's default is 700 allocations). A request
# allocates hundreds of short-lived objects, so the default runs a collection every few requests;
# 20,000 cut CPU per request by ≈5 % in `make bench` (4) and (5) for a few MB of garbage that lives
# a little longer. Import-time objects are frozen out of every collection either way.
APIM_GATEWAY_GC_THRESHOLD = env.get_int("APIM_GATEWAY_GC_THRESHOLD", 20_000)
for _name in (
    "APIM_GATEWAY_MAX_URL_BYTES",
    "APIM_GATEWAY_MAX_HEADER_BYTES",
    "APIM_GATEWAY_MAX_HEADERS",
    "APIM_GATEWAY_GC_THRESHOLD",
):
    if globals()[_name] < 1:
        raise EnvError(f"{_name} must be at least 1, not {globals()[_name]}")

LOG_LEVEL = env.get_str("LOG_LEVEL", "INFO") or "INFO"
# "json" (one object per line, with request_id and trace ids) or "text"; production defaults to json.
# Either way a redaction filter keeps API keys, credentials and cookies out of every line.
APIM_LOG_FORMAT = (env.get_str("APIM_LOG_FORMAT", "text") or "text").lower()
from apim.observability.logs import logging_config  # noqa: E402

LOGGING = logging_config(APIM_LOG_FORMAT, LOG_LEVEL)

# Policy types this installation offers, in registration order (``policies.registry`` checks them at start-up).
from policies.registry import DEFAULT_POLICIES  # noqa: E402

APIM_POLICIES: list[str] = list(DEFAULT_POLICIES)
# Rate limits and quotas: a Redis of their own if set, else REDIS_URL, else an in-process store per worker.
APIM_RATELIMIT_REDIS_URL = env.get_str("APIM_RATELIMIT_REDIS_URL", REDIS_URL)
APIM_RATELIMIT_KEY_PREFIX = env.get_str("APIM_RATELIMIT_KEY_PREFIX", "apim:rl:")
# The gateway's Redis client for limit checks: "lean" (its own pipelined RESP connection) or "redis-py".
APIM_RATELIMIT_CLIENT = env.get_str("APIM_RATELIMIT_CLIENT", "lean")
if APIM_RATELIMIT_CLIENT not in ("lean", "redis-py"):
    raise EnvError(f"APIM_RATELIMIT_CLIENT must be 'lean' or 'redis-py', not {APIM_RATELIMIT_CLIENT!r}")
# What plan limits and quotas do when their store is unreachable: "open" (admit) or "closed" (503).
APIM_RATE_LIMIT_FAIL_MODE = env.get_str("APIM_RATE_LIMIT_FAIL_MODE", "open")
if APIM_RATE_LIMIT_FAIL_MODE not in ("open", "closed"):
    raise EnvError(f"APIM_RATE_LIMIT_FAIL_MODE must be 'open' or 'closed', not {APIM_RATE_LIMIT_FAIL_MODE!r}")

# Analytics: the usage pipeline (issue 5). Gateway buffer → Redis stream (or the database
# directly without Redis) → Celery drain → am_usage_records, monthly partitions on PostgreSQL.
def _usage_int(name: str, default: int, low: int) -> int:
    value = env.get_int(name, default)
    if value < low:
        raise EnvError(f"{name} must be at least {low}, not {value}")
    return value


APIM_USAGE_REDIS_URL = env.get_str("APIM_USAGE_REDIS_URL", REDIS_URL)
APIM_USAGE_STREAM = env.get_str("APIM_USAGE_STREAM", "apim:usage") or "apim:usage"
APIM_USAGE_STREAM_GROUP = env.get_str("APIM_USAGE_STREAM_GROUP", "apim-usage-ingest") or "apim-usage-ingest"
# Stream entries are batches. The bound keeps Redis memory finite in a long database outage: a full
# stream refuses new batches (never trims old ones), and the gateway spills them to its local file.
APIM_USAGE_STREAM_MAXLEN = _usage_int("APIM_USAGE_STREAM_MAXLEN", 100_000, 1000)
APIM_USAGE_BUFFER_MAX = _usage_int("APIM_USAGE_BUFFER_MAX", 100_000, 1)  # records in one gateway worker's memory
APIM_USAGE_SPILL_AFTER = _usage_int("APIM_USAGE_SPILL_AFTER", 10_000, 0)  # kept in memory while the sink is down
APIM_USAGE_BATCH_SIZE = _usage_int("APIM_USAGE_BATCH_SIZE", 500, 1)
APIM_USAGE_FLUSH_INTERVAL = _usage_int("APIM_USAGE_FLUSH_INTERVAL_MS", 500, 10) / 1000
APIM_USAGE_SPILL_DIR = env.get_str("APIM_USAGE_SPILL_DIR") or str(DATA_DIR / "usage-spill")
APIM_USAGE_SPILL_MAX_BYTES = _usage_int("APIM_USAGE_SPILL_MAX_BYTES", 1024**3, 0)
APIM_USAGE_DRAIN_COUNT = _usage_int("APIM_USAGE_DRAIN_COUNT", 100, 1)  # stream entries per COPY transaction
APIM_USAGE_DRAIN_BUDGET = _usage_int("APIM_USAGE_DRAIN_BUDGET_SECONDS", 60, 1)
APIM_USAGE_DRAIN_INTERVAL = _usage_int("APIM_USAGE_DRAIN_INTERVAL_SECONDS", 2, 1)
APIM_USAGE_CLAIM_IDLE_MS = _usage_int("APIM_USAGE_CLAIM_IDLE_MS", 60_000, 0)
APIM_USAGE_PARTITIONS_AHEAD = _usage_int("APIM_USAGE_PARTITIONS_AHEAD", 3, 2)
APIM_USAGE_RETENTION_MONTHS = _usage_int("APIM_USAGE_RETENTION_MONTHS", 13, 0)  # 0 keeps everything
# Rollups (minute / hour / day) are recomputed every minute from (last closed minute - grace) on:
# records arriving later than the grace need `manage.py usage_rollup --since ...`.
APIM_ROLLUP_GRACE_SECONDS = _usage_int("APIM_ROLLUP_GRACE_SECONDS", 600, 0)
# Whole monthly rollup partitions older than this are dropped (coarser kept longer; 0 keeps everything).
APIM_ROLLUP_RETENTION_MONTHS = {
    "minute": _usage_int("APIM_ROLLUP_RETENTION_MONTHS_MINUTE", 2, 0),
    "hour": _usage_int("APIM_ROLLUP_RETENTION_MONTHS_HOUR", 13, 0),
    "day": _usage_int("APIM_ROLLUP_RETENTION_MONTHS_DAY", 60, 0),
}
CELERY_BEAT_SCHEDULE = {
    "usage-rollup": {"task": "analytics.usage_rollup_task", "schedule": 60.0},
    "usage-drain": {"task": "analytics.usage_drain_task", "schedule": float(APIM_USAGE_DRAIN_INTERVAL)},
    "usage-partitions": {"task": "analytics.usage_partitions_task", "schedule": 3600.0},
    "idempotency-purge": {"task": "apim.idempotency_records_purge_task", "schedule": 3600.0},
}
