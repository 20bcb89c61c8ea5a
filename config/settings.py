"""Settings of the regional medical resource platform, read from the environment.

Every variable is listed in the README. With no variables set, the platform runs embedded:
SQLite under var/, Celery tasks executed in process.
"""

from __future__ import annotations

import datetime as dt
import secrets
import zoneinfo
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from regional.env import env_bool, env_clock, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("REGIONAL_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _local_secret(filename: str, factory) -> str:
    """A secret generated once per installation and kept under var/ (embedded mode only)."""
    path = VAR_DIR / filename
    if not path.exists():
        path.write_text(factory())
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY") or _local_secret("secret_key", lambda: secrets.token_urlsafe(50))
if len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be at least 50 characters")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
# Where hospitals reach the platform; used in WSDL addresses and in the links given to HIS.
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
# Unset: a WSDL names the address it was asked on (whatever port the server runs on); the default
# above serves only what has no request to go by (links in the demo seeding, bill fetching).
WSDL_ADDRESS_FROM_REQUEST = not env_str("PUBLIC_BASE_URL")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "config",
    "regional",
    "sandbox",
    "booking",
    "referral",
    "reconciliation",
    "supervision",
]

MIDDLEWARE = [
    "regional.observability.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "regional.security.ContentSecurityPolicyMiddleware",
    "regional.security.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "regional.locale.ChineseOnlyMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        # A kept connection is checked before a request reuses it: after a PostgreSQL restart the
        # first request on each thread would otherwise fail on the dead connection.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # SQLite has one writer at a time. Deferred transactions (Django's default) take the write lock
    # at their first write, and a reader that then wants to write fails at once with `database is
    # locked` instead of waiting; IMMEDIATE takes it at BEGIN, so writers queue for up to the busy
    # timeout. WAL lets readers go on while one writes. No transaction is open across a hospital
    # call (the hospital client refuses), so nobody holds the lock while a hospital answers.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": env_int("SQLITE_BUSY_TIMEOUT", 20),
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Pinned: every page, form and API message in Simplified Chinese (regional.locale).
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文")]
# The region's time zone: the admin, exports, e-mails and SMS all show times in it.
TIME_ZONE = env_str("REGION_TIME_ZONE", "Asia/Shanghai")
try:
    zoneinfo.ZoneInfo(TIME_ZONE)
except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
    raise ImproperlyConfigured(f"REGION_TIME_ZONE {TIME_ZONE!r} is not a known time zone") from exc
USE_I18N = True
# The project's translations of third-party strings that ship without Simplified Chinese (the .mo is committed).
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# Messages of up to MESSAGE_MAX_BYTES arrive as one body (a 10,000-record schedule is ~5 MB).
MESSAGE_MAX_BYTES = env_int("MESSAGE_MAX_BYTES", 10 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MESSAGE_MAX_BYTES + 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10000

# Redis: broker, result backend and cache. Unset (embedded): the broker is a directory under var/
# (kombu's filesystem transport), which the worker and beat started by `manage.py serve` (`make
# run`) share with the web server; CELERY_EAGER=1 runs tasks in process instead (one-off scripts,
# the test suite).
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
    CACHES = {
        "default": {
            "BACKEND": "regional.cache.ResilientRedisCache",
            "LOCATION": REDIS_URL,
            # A dead Redis must fail fast, not hold a request for the default socket timeout.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": 3600,
        # Publishing after commit must give up at once while Redis is away (the outbox sweep sends
        # later): no waiting for a dead socket, no retrying inside the request.
        "socket_connect_timeout": 1,
        "socket_timeout": 5,
        "max_retries": 0,
    }
else:
    BROKER_DIR = VAR_DIR / "broker"
    for _folder in ("queue", "control"):
        (BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    # Producers and consumers use one folder; a consumer moves a message out of it to take it.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "polling_interval": 0.5,
    }
    CELERY_RESULT_BACKEND = None
    CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_EAGER", False)
    CELERY_TASK_EAGER_PROPAGATES = False
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_TIMEOUT = 1
CELERY_TASK_PUBLISH_RETRY = False
# Nothing reads task results, and waiting for them would subscribe to Redis on every publish.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"retry_policy": {"max_retries": 0}, "socket_connect_timeout": 1}
# The worker keeps the project's logging (config.celery connects setup_logging as well).
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Beat records each sent task's last_run_at in 周期任务 at once (not every 3 minutes): /healthz
# reads beat's last tick from there.
CELERY_BEAT_SYNC_EVERY = 1
CELERY_TASK_DEFAULT_QUEUE = "regional"

# /healthz pings the workers at most once per this many seconds per process.
HEALTHZ_WORKERS_CACHE_SECONDS = env_int("HEALTHZ_WORKERS_CACHE_SECONDS", 10)

# Personal data (CONTRACT.md section 6): Fernet keys, newest first (rotation keeps old ones to
# decrypt), and a separate key for lookup hashes. Embedded mode generates them under var/.
PII_ENCRYPTION_KEYS = env_list("PII_ENCRYPTION_KEYS") or [
    _local_secret("pii_key", lambda: __import__("cryptography.fernet").fernet.Fernet.generate_key().decode())
]
PII_HASH_KEY = env_str("PII_HASH_KEY") or _local_secret("pii_hash_key", lambda: secrets.token_hex(32))
# Keys of the hospitals' secret hashes, newest first: prepend a key to rotate (each hash moves to it
# at the hospital's next successful call), drop the old one later. Not DJANGO_SECRET_KEY, so
# rotating that (sessions, signing) never locks a hospital out; hashes made with it before this
# setting existed are still recognised and moved the same way.
HOSPITAL_SECRET_KEYS = env_list("HOSPITAL_SECRET_KEYS") or [
    _local_secret("hospital_secret_key", lambda: secrets.token_hex(32))
]

# Hospital side (outbound SOAP calls).
HOSPITAL_CALL_TIMEOUT = env_int("HOSPITAL_CALL_TIMEOUT", 10)
HOSPITAL_CIRCUIT_FAILURES = env_int("HOSPITAL_CIRCUIT_FAILURES", 5)
HOSPITAL_CIRCUIT_RESET_SECONDS = env_int("HOSPITAL_CIRCUIT_RESET_SECONDS", 30)
ORDER_LOCK_MINUTES = env_int("ORDER_LOCK_MINUTES", 15)

# Delivery of what is owed after a commit (notices to hospitals, texts to patients, referral
# reminders; regional.delivery). The BOOKING_OUTBOX_* names of earlier releases still work.
DELIVERY_MAX_ATTEMPTS = env_int("DELIVERY_MAX_ATTEMPTS", env_int("BOOKING_OUTBOX_MAX_ATTEMPTS", 20))
DELIVERY_BACKOFF_SECONDS = env_int("DELIVERY_BACKOFF_SECONDS", env_int("BOOKING_OUTBOX_BACKOFF_SECONDS", 5))
DELIVERY_BACKOFF_MAX_SECONDS = env_int(
    "DELIVERY_BACKOFF_MAX_SECONDS", env_int("BOOKING_OUTBOX_BACKOFF_MAX_SECONDS", 600)
)
DELIVERY_LEASE_SECONDS = env_int("DELIVERY_LEASE_SECONDS", 60)


def _notifier(value: str) -> str:
    """A backend of regional.notify by its class name: BOOKING_NOTIFIER of earlier releases named
    the same classes under their old module."""
    return f"regional.notify.{value.rsplit('.', 1)[-1]}" if value else ""


# Notices to patients, hospitals and staff (regional.notify): the log by default;
# "regional.notify.SmsGatewayBackend" posts texts to an SMS gateway.
NOTIFIER = env_str("NOTIFIER") or _notifier(env_str("BOOKING_NOTIFIER")) or "regional.notify.LogBackend"
SMS_GATEWAY_URL = env_str("SMS_GATEWAY_URL") or env_str("BOOKING_SMS_GATEWAY_URL")
SMS_GATEWAY_KEY = env_str("SMS_GATEWAY_KEY") or env_str("BOOKING_SMS_GATEWAY_KEY")
SMS_GATEWAY_TIMEOUT = env_int("SMS_GATEWAY_TIMEOUT", env_int("BOOKING_SMS_TIMEOUT", 5))

# Booking: sweeps and live-data caches.
BOOKING_SWEEP_SECONDS = env_int("BOOKING_SWEEP_SECONDS", 60)
BOOKING_LOCKING_STALE_SECONDS = env_int("BOOKING_LOCKING_STALE_SECONDS", 120)
BOOKING_SLOTS_CACHE_SECONDS = env_int("BOOKING_SLOTS_CACHE_SECONDS", 10)
BOOKING_QUEUE_CACHE_SECONDS = env_int("BOOKING_QUEUE_CACHE_SECONDS", 5)
BOOKING_ORDER_REFRESH_SECONDS = env_int("BOOKING_ORDER_REFRESH_SECONDS", 30)

# Finance: limits of a reconciliation run and of ReconciliationInfo answers.
RECONCILIATION_MAX_DAYS = env_int("RECONCILIATION_MAX_DAYS", 31)
RECONCILIATION_MAX_DISCREPANCIES = env_int("RECONCILIATION_MAX_DISCREPANCIES", 50000)
RECONCILIATION_HOSPITAL_CHECK_LIMIT = env_int("RECONCILIATION_HOSPITAL_CHECK_LIMIT", 500)
RECONCILIATION_INFO_MAX_DAYS = env_int("RECONCILIATION_INFO_MAX_DAYS", 31)
RECONCILIATION_INFO_MAX_RECORDS = env_int("RECONCILIATION_INFO_MAX_RECORDS", 20000)

# Two-way referral: how long a form link (referralCode) stays valid, when a pending referral is
# overdue, and how often the overdue scan runs.
REFERRAL_LINK_TTL_MINUTES = env_int("REFERRAL_LINK_TTL_MINUTES", 1440)
REFERRAL_PENDING_HOURS = env_int("REFERRAL_PENDING_HOURS", 48)
REFERRAL_OVERDUE_SCAN_MINUTES = env_int("REFERRAL_OVERDUE_SCAN_MINUTES", 15)

# The one periodic schedule. django-celery-beat's DatabaseScheduler writes these entries into its
# tables (周期任务 in the admin) each time beat starts, so a change belongs here, not in the admin.
# 10:30 Asia/Shanghai by default: WeChat Pay generates the previous day's bill from 09:00 and
# advises fetching after 10:00; Alipay's is ready earlier.
RECONCILIATION_NIGHTLY_AT = env_clock("RECONCILIATION_NIGHTLY_AT", "10:30")
# The nightly entry keeps the name of the row that reconciliation's migration 0002 created, so beat
# updates that row instead of adding a second one (the night must run once).
RECONCILIATION_NIGHTLY_NAME = "每日财务对账（获取昨日对账单并对账）"
CELERY_BEAT_SCHEDULE = {
    # Unpaid locks released, lost deliveries and interrupted locks picked up, waitlists offered or
    # closed, day-before reminders sent: each checks what is due, every BOOKING_SWEEP_SECONDS.
    "booking-expire-locks": {"task": "booking.expire_locks", "schedule": dt.timedelta(seconds=BOOKING_SWEEP_SECONDS)},
    "booking-sweep": {"task": "booking.sweep", "schedule": dt.timedelta(seconds=BOOKING_SWEEP_SECONDS)},
    "booking-waitlist-sweep": {
        "task": "booking.waitlist_sweep",
        "schedule": dt.timedelta(seconds=BOOKING_SWEEP_SECONDS),
    },
    "booking-remind": {"task": "booking.remind", "schedule": dt.timedelta(seconds=BOOKING_SWEEP_SECONDS)},
    "referral-overdue-scan": {
        "task": "referral.scan_overdue",
        "schedule": dt.timedelta(minutes=REFERRAL_OVERDUE_SCAN_MINUTES),
    },
    RECONCILIATION_NIGHTLY_NAME: {
        "task": "reconciliation.nightly",
        "schedule": crontab(hour=RECONCILIATION_NIGHTLY_AT[0], minute=RECONCILIATION_NIGHTLY_AT[1]),
    },
    # The supervision aggregates of the last 14 and next 31 days rebuilt at 02:30, after the day's
    # 2.4 reports and before the commission's staff arrive.
    "supervision-nightly": {"task": "supervision.nightly", "schedule": crontab(hour=2, minute=30)},
}

# Production hardening; nginx terminates TLS (deploy/nginx.conf) and sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
SILENCED_SYSTEM_CHECKS = env_list("DJANGO_SILENCED_CHECKS")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "区域医疗健康资源平台 渠道接口",
    "DESCRIPTION": "预约挂号渠道（微信 JKMZWX、APP JKMYAPP）使用的 REST 接口",
    "VERSION": "1.0.0",
    # The channel's whole reference: description, error codes, life cycle, quick-start, examples.
    "SERVE_INCLUDE_SCHEMA": False,
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "booking.api.docs.postprocess"],
}

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOG_FORMAT = env_str("LOG_FORMAT", "plain" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "mask_pii": {"()": "regional.logging.MaskPersonalDataFilter"},
        "context": {"()": "regional.observability.ContextFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(transaction_id)s] %(message)s"},
        "json": {"()": "regional.observability.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["mask_pii", "context"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Spyne logs whole request bodies of bad input at ERROR: they may carry personal data.
        "spyne": {"level": "CRITICAL", "handlers": ["console"], "propagate": False},
        "zeep": {"level": "WARNING"},
        "django.db.backends": {"level": "WARNING"},
    },
}
# Calls per minute per hospital (SOAP, referral) and per channel (REST); 0 switches a limit off.
RATE_LIMIT_HOSPITAL_PER_MINUTE = env_int("RATE_LIMIT_HOSPITAL_PER_MINUTE", 1200)
RATE_LIMIT_CHANNEL_PER_MINUTE = env_int("RATE_LIMIT_CHANNEL_PER_MINUTE", 6000)
# Calls per minute from one address to the referral servlet, counted before its body is read.
RATE_LIMIT_ADDRESS_PER_MINUTE = env_int("RATE_LIMIT_ADDRESS_PER_MINUTE", 1200)
# /healthz answers from a check at most this old (per process).
HEALTHZ_CACHE_SECONDS = env_int("HEALTHZ_CACHE_SECONDS", 5)
# The simulated partners (sandbox hospital, payment sandbox) hold test patients' data: off unless
# enabled (`make run` and the test suite enable them). When on, the sandbox hospital answers only
# HTTP Basic `sandbox:<SANDBOX_SECRET>` or an address in SANDBOX_ALLOWED_NETWORKS.
SANDBOX_ENABLED = env_bool("SANDBOX_ENABLED", False)
SANDBOX_SECRET = env_str("SANDBOX_SECRET", "")
SANDBOX_ALLOWED_NETWORKS = env_list("SANDBOX_ALLOWED_NETWORKS", ["127.0.0.1/32", "::1/128"])
# Largest REST request body: channels send small JSON objects.
REST_MAX_BODY_BYTES = env_int("REST_MAX_BODY_BYTES", 64 * 1024)
# Admin logins: failures per address and user name before a lock-out of LOGIN_LOCKOUT_MINUTES.
LOGIN_MAX_FAILURES = env_int("LOGIN_MAX_FAILURES", 5)
LOGIN_LOCKOUT_MINUTES = env_int("LOGIN_LOCKOUT_MINUTES", 15)
# Reverse proxies (nginx) whose X-Real-IP header is believed; comma-separated addresses.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES")
# Who may scrape /metrics (Prometheus); comma-separated CIDRs.
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", ["127.0.0.1/32", "::1/128"])
SPECTACULAR_SETTINGS.update(
    {"SWAGGER_UI_DIST": "SIDECAR", "SWAGGER_UI_FAVICON_HREF": "SIDECAR", "REDOC_DIST": "SIDECAR"}
)
FORMS_URLFIELD_ASSUME_HTTPS = True
