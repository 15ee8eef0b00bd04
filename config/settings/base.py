"""Settings read from the environment.

With no environment set this is the embedded default: SQLite (IMMEDIATE transactions, WAL),
an in-memory channel layer, background jobs run in-process. DATABASE_URL, REDIS_URL and
CELERY_BROKER_URL switch to the production engines. Every variable is listed in the README.
"""

from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from config.settings.env import database_from_url, env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY") or (
    # Only the embedded default may run without a key; check --deploy flags this one.
    "django-insecure-embedded-default-set-DJANGO_SECRET_KEY-in-production"
)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
PLATFORM_URL = env_str("PLATFORM_URL", "http://localhost:8000").rstrip("/")
_platform = urlsplit(PLATFORM_URL)
PLATFORM_HTTPS = _platform.scheme == "https"

# Not "daphne": its app only makes `runserver` speak ASGI (the run command starts daphne
# itself), and it would load Twisted into every gunicorn worker (15 MB each).
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "channels",
    "booking",
    "sessions_app",
    "relay_control",
    "messaging",
    "web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin, the students' pages) from daphne itself: no extra server needed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.cors.SessionCorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "web.login_sessions.SessionUserMiddleware",
    "config.messages.LazyMessageMiddleware",
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

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}")
DATABASES = {
    "default": database_from_url(
        DATABASE_URL,
        pool_max=env_int("DATABASE_POOL_MAX", 8),
        prepared=env_bool("DATABASE_PREPARED_STATEMENTS", True),
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Throttle counters must be shared by every web process and must not depend on Redis.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "throttle": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "platform_throttle_cache",
    },
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Login sessions are read with their user in one query (web/login_sessions.py).
SESSION_ENGINE = "web.login_sessions"
AUTHENTICATION_BACKENDS = ["web.login_sessions.SessionUserBackend"]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(BASE_DIR / "var" / "static")))
# Serve from the apps' static folders when collectstatic has not run (the embedded default).
WHITENOISE_USE_FINDERS = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_MAX_AGE = 300

# --- security: on by default whenever the public URL is https -------------------------
SESSION_COOKIE_SECURE = PLATFORM_HTTPS
CSRF_COOKIE_SECURE = PLATFORM_HTTPS
CSRF_TRUSTED_ORIGINS = [f"{_platform.scheme}://{_platform.netloc}"] if _platform.netloc else []
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", PLATFORM_HTTPS)
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000 if PLATFORM_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PLATFORM_HTTPS
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
if env_bool("DJANGO_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = [
    # HSTS preload is an operator's decision (DJANGO_HSTS_PRELOAD), not a default.
    "security.W021",
]

# --- channels and background jobs ----------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        # After a Redis restart, pooled connections are dead: retry on a
                        # fresh one instead of failing the socket; give up fast when down.
                        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
                        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
                        "socket_connect_timeout": 2,
                    }
                ],
                "capacity": 1000,
                "expiry": 30,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
WEB_PROCESSES = env_int("WEB_PROCESSES", 1)
# HTTP under ASGI: Django's WSGI handler on this many threads per process (config/http_bridge.py);
# 0 gives HTTP to Django's ASGI handler instead.
WEB_THREADS = env_int("WEB_THREADS", 2)
if WEB_THREADS < 0:
    raise ImproperlyConfigured(f"WEB_THREADS must be 0 or more, not {WEB_THREADS}")
# Each of those threads keeps a pooled PostgreSQL connection between requests
# (config/postgresql): the pool needs more for the websockets and the jobs.
_POOL = DATABASES["default"]["OPTIONS"].get("pool")
if _POOL and WEB_THREADS >= _POOL["max_size"]:
    raise ImproperlyConfigured(
        f"DATABASE_POOL_MAX must be more than WEB_THREADS ({WEB_THREADS}): each request "
        "thread keeps one of the pool's connections"
    )
# PostgreSQL only: seconds a web process may remember a login session and its user between
# requests (web/login_cache.py), forgetting it as soon as PostgreSQL notifies a change to
# either; it keeps one more connection of its own, outside the pool, to listen. 0: read them
# on every request.
LOGIN_CACHE_SECONDS = env_int("LOGIN_CACHE_SECONDS", 60)
if LOGIN_CACHE_SECONDS < 0:
    raise ImproperlyConfigured(f"LOGIN_CACHE_SECONDS must be 0 or more, not {LOGIN_CACHE_SECONDS}")
# Seconds a request may wait for one of those threads before it is answered 503 server_busy
# without running (0: no limit). Healthy queues wait milliseconds.
WEB_QUEUE_TIMEOUT = env_int("WEB_QUEUE_TIMEOUT", 3)
if WEB_QUEUE_TIMEOUT < 0:
    raise ImproperlyConfigured(f"WEB_QUEUE_TIMEOUT must be 0 or more, not {WEB_QUEUE_TIMEOUT}")

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"
# The sweepers read due work from the database, so a lost tick is harmless.
JOB_INTERVAL_SECONDS = env_int("JOB_INTERVAL_SECONDS", 15)
CELERY_BEAT_SCHEDULE = {
    "platform-sweep": {"task": "booking.tasks.sweep", "schedule": JOB_INTERVAL_SECONDS},
}
# Without a broker the web process runs the same sweep on a timer thread.
JOBS_IN_PROCESS = env_bool("JOBS_IN_PROCESS", not CELERY_BROKER_URL)

# --- REST API --------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["booking.parsers.StrictJSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "booking.negotiation.AnyFirstNegotiation",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "booking.api_errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "join": env_str("THROTTLE_JOIN", "20/min"),
        "lookup": env_str("THROTTLE_LOOKUP", "20/min"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Throttles count by client address: how many proxies in front append X-Forwarded-For.
    "NUM_PROXIES": env_int("DJANGO_NUM_PROXIES", 0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Remote lab booking API",
    "DESCRIPTION": "Book remote laboratory experiments, start sessions, and feed relays.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "OAS_VERSION": "3.1.0",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "relay_control.schema.add_feed",
        "booking.schema.add_unavailable",
    ],
}

# --- product settings ------------------------------------------------------------------
BOOKING_PAST_DAYS = 90
BOOKING_REMINDER_BEFORE = env_int("BOOKING_REMINDER_BEFORE", 1800)
AVAILABILITY_MAX_DAYS = env_int("AVAILABILITY_MAX_DAYS", 31)
REVOCATION_LEEWAY_SECONDS = env_int("REVOCATION_LEEWAY_SECONDS", 300)
SURVEY_PERIOD_SECONDS = env_int("SURVEY_PERIOD_SECONDS", 86400)
TOKEN_LEEWAY_SECONDS = env_int("TOKEN_LEEWAY_SECONDS", 30)
# session.ending warnings, in seconds before the end (comma-separated).
SESSION_ENDING_WARNINGS = [int(v) for v in env_list("SESSION_ENDING_WARNINGS", ["300", "60"])]
# Sent as a survey event after a session ends; {{reference}} is the booking reference.
SURVEY_URL = env_str("SURVEY_URL")
# Push a revocation to relays from the web process right after the commit (the sweep
# retries failures either way); RELAY_PUSH_TIMEOUT bounds one call to a relay.
RELAY_PUSH_IN_PROCESS = env_bool("RELAY_PUSH_IN_PROCESS", True)
RELAY_PUSH_TIMEOUT = env_int("RELAY_PUSH_TIMEOUT", 5)
RELAY_AGENT_INTERVAL = env_int("RELAY_AGENT_INTERVAL", 5)
# Encrypts the private halves of our signing keys; default: derived from DJANGO_SECRET_KEY.
SIGNING_KEYS_SECRET = env_str("SIGNING_KEYS_SECRET")
# Session codes are derived from this key and a per-session salt; only their hash is stored.
SESSION_CODE_KEY = env_str("SESSION_CODE_KEY") or SECRET_KEY

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "bookings@localhost")
# Without a broker, booking e-mails are sent from a background thread of the web process
# (off the request); the test settings send them inline so tests see them at once.
MAIL_IN_BACKGROUND = True
# A hung mail server must not hold a worker (or, in the embedded default, the web process).
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.server": {"level": "WARNING"},
        # 4xx answers are the API doing its job; only server errors are worth a line.
        "django.request": {"level": "ERROR"},
    },
}
