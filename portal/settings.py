"""Settings for the Appraisal Portal, read only from environment variables.

Every variable is listed in README.md. Without any of them the portal runs as
a self-contained demo: SQLite and a file-system Celery broker under ``var/``,
mail written to ``var/mail/``. Set ``DATABASE_URL`` and ``REDIS_URL`` for
PostgreSQL and Redis, and ``DEBUG=0`` with a real ``SECRET_KEY`` for
production.
"""

from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from portal.env import env_bool, env_int, env_list, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", True)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    # Only ever used with DEBUG on: a local demo or the test suite.
    SECRET_KEY = "insecure-local-demo-key-never-use-in-production-0123456789abcdef"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Links in e-mails lead to where the server listens (PORTAL_BIND, as `make run`
# and the Procfile use it) unless the portal is published under another name.
# Listening on every interface still means this machine; a Unix socket has no URL.
_bind = env_str("PORTAL_BIND", "127.0.0.1:8000")
_bind = "127.0.0.1:8000" if _bind.startswith("unix:") else _bind.replace("0.0.0.0:", "127.0.0.1:", 1)
SITE_URL = env_str("SITE_URL", f"http://{_bind}").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "django_tables2",
    "django_htmx",
    "django_bootstrap5",
    "bootstrap",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "csp",
    "health_check",
    "heroicons",
    "portal",
    "orders",
    "risks",
]

MIDDLEWARE = [
    # First: the whole request runs in a frame-stack chunk of its own (portal/stack.py).
    "portal.stack.RoomyStackMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "portal.middleware.RefuseNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    # Before CommonMiddleware, whose redirect would drop a POST's body.
    "portal.middleware.MissingSlashMiddleware",
    "portal.middleware.ApiIfMatchMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # A deactivated person, or one of a deactivated organisation, is signed out before any view.
    "portal.access.DeactivatedAccessMiddleware",
    "portal.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks, so it sees the outcome of every login.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

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
                "django.template.context_processors.i18n",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------

DATABASE_URL = env_url(
    "DATABASE_URL",
    ("sqlite", "postgres", "postgresql", "pgsql"),
    default=f"sqlite:///{VAR_DIR / 'portal.sqlite3'}",
)
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        # Writers queue instead of failing: the web server, a worker and beat
        # share one file. IMMEDIATE takes the write lock when a transaction
        # starts, so a read-then-write transaction cannot be overtaken.
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_SQLITE_NAME", "") or None}
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # PostgreSQL's JIT off for every connection: the portal's statements read
    # a few rows through indexes, often many times over, which the planner
    # prices past jit_above_cost; compiling cost more than it saved wherever
    # it was measured (the sweep's probe 560 ms against 21, the dashboard,
    # the stage durations; docs/deploy.md). Options from the URL come after,
    # so an installation can put it back; DB_JIT_OFF=0 leaves the startup
    # options alone (a pooler that refuses them; set it on the server then).
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _given = _options.get("options", "")
    _given = " ".join(_given) if isinstance(_given, list) else _given  # ?options= given twice
    _options["options"] = " ".join(filter(None, ["-c jit=off" if env_bool("DB_JIT_OFF", True) else "", _given]))
    if not _options["options"]:
        del _options["options"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and Celery broker ----------------------------------------------

REDIS_URL = env_url("REDIS_URL", ("redis", "rediss", "unix"))
# Redis is a helper, not a gate: the cache only counts rate limits and the
# broker only carries "do it now" nudges whose work is in the database. Every
# call gives up quickly, so a Redis that is down or frozen costs a request a
# fraction of a second (see docs/reliability.md).
REDIS_CONNECT_TIMEOUT = 0.25
REDIS_SOCKET_TIMEOUT = 0.5
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": REDIS_CONNECT_TIMEOUT, "socket_timeout": REDIS_SOCKET_TIMEOUT},
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Longer than any task runs, so an acked-late task is not redelivered
        # while a worker is still on it.
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=60),
        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
        "socket_timeout": REDIS_SOCKET_TIMEOUT,
        # Publishing connects once and gives up: a web request must not wait
        # for the broker to come back (beat and the worker reconnect themselves).
        "max_retries": 0,
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = "filesystem://"
    _celery_dir = VAR_DIR / "celery"
    for _sub in ("queue", "processed", "control"):
        (_celery_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_celery_dir / "queue"),
        "data_folder_out": str(_celery_dir / "queue"),
        "processed_folder": str(_celery_dir / "processed"),
        "control_folder": str(_celery_dir / "control"),
    }

CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "portal"
# Task modules besides each app's ``tasks`` (found by autodiscovery).
CELERY_IMPORTS = ["orders.imports"]
# Work that must happen on time never waits behind mail: a hung mail server
# ties up only the `mail` worker. The Procfile runs one worker for the
# deadlines, the sweep and the rest, and one for mail (docs/deploy.md).
CELERY_QUEUE_DEADLINES = "deadlines"
CELERY_QUEUE_SWEEP = "sweep"
CELERY_QUEUE_MAIL = "mail"
CELERY_TASK_ROUTES = {
    "orders.tasks.apply_deadlines": {"queue": CELERY_QUEUE_DEADLINES},
    "portal.tasks.record_beat_heartbeat": {"queue": CELERY_QUEUE_DEADLINES},
    "risks.tasks.run_sweep": {"queue": CELERY_QUEUE_SWEEP},
    "orders.tasks.refresh_stage_durations": {"queue": CELERY_QUEUE_SWEEP},
    "portal.tasks.refresh_dashboard_tallies": {"queue": CELERY_QUEUE_SWEEP},
    "portal.tasks.deliver_due": {"queue": CELERY_QUEUE_MAIL},
    "portal.tasks.send_daily_digest": {"queue": CELERY_QUEUE_MAIL},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A publish that fails is retried briefly, then raises; callers log it and
# carry on, because beat finds the work in the database anyway.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.1}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
DEADLINE_SWEEP_SECONDS = env_int("DEADLINE_SWEEP_SECONDS", 60, minimum=5)
RISK_SWEEP_SECONDS = env_int("RISK_SWEEP_SECONDS", 300, minimum=10)
PENDING_SCAN_RETRY_SECONDS = env_int("PENDING_SCAN_RETRY_SECONDS", 300, minimum=10)
# How often each provider's stage durations are recomputed from the events.
STAGE_DURATIONS_SECONDS = env_int("STAGE_DURATIONS_SECONDS", 900, minimum=10)
# The rolling window the stage durations (and so the forecasts) are measured over.
FORECAST_WINDOW_DAYS = env_int("FORECAST_WINDOW_DAYS", 30, minimum=1)
# How often the dashboard's tallies of open orders and duplicate fees are counted again.
DASHBOARD_TALLY_SECONDS = env_int("DASHBOARD_TALLY_SECONDS", 60, minimum=10)
# Order imports (orders.imports): the largest file and the most rows one
# takes, and how long a running import may go without a heartbeat before
# beat hands it to another worker (a batch takes well under a second).
IMPORT_MAX_BYTES = env_int("IMPORT_MAX_BYTES", 32 * 1024 * 1024, minimum=1024)
IMPORT_MAX_ROWS = env_int("IMPORT_MAX_ROWS", 200_000, minimum=1)
IMPORT_STALL_SECONDS = env_int("IMPORT_STALL_SECONDS", 60, minimum=1)
IMPORT_ENQUEUE = env_bool("IMPORT_ENQUEUE", True)
# Rows imported (and committed with the job's progress) at a time.
IMPORT_BATCH_ROWS = env_int("IMPORT_BATCH_ROWS", 2000, minimum=1)
ESCALATION_FIRST_RESPONSE_HOURS = env_int("ESCALATION_FIRST_RESPONSE_HOURS", 4, minimum=1)
ESCALATION_REMINDER_HOURS = env_int("ESCALATION_REMINDER_HOURS", 4, minimum=1)
# Notifications: how long a claimed email may be in flight before another
# worker takes it over (a worker died), how often and how patiently to retry.
NOTIFY_ENQUEUE = env_bool("NOTIFY_ENQUEUE", True)
NOTIFY_DELIVERY_SECONDS = env_int("NOTIFY_DELIVERY_SECONDS", 60, minimum=5)
# How often an open list refreshes its rows and counts in the browser.
LIST_REFRESH_SECONDS = env_int("LIST_REFRESH_SECONDS", 30, minimum=1)
# Beat records a heartbeat this often; /health/ turns red when the last one is
# older than BEAT_HEARTBEAT_STALE_AFTER periods (beat, or the deadlines worker, stalled).
BEAT_HEARTBEAT_SECONDS = env_int("BEAT_HEARTBEAT_SECONDS", 60, minimum=5)
BEAT_HEARTBEAT_STALE_AFTER = 3
# The deadlines and the sweep carry no `expires`: a run that waited still runs
# (both are idempotent and find their work in the database). Mail and the
# pending-scan retry may expire: the next run does the same work.
CELERY_BEAT_SCHEDULE = {
    "deliver-notifications": {
        "task": "portal.tasks.deliver_due",
        "schedule": float(NOTIFY_DELIVERY_SECONDS),
        "options": {"expires": float(NOTIFY_DELIVERY_SECONDS)},
    },
    "beat-heartbeat": {
        "task": "portal.tasks.record_beat_heartbeat",
        "schedule": float(BEAT_HEARTBEAT_SECONDS),
    },
    "daily-digest": {
        "task": "portal.tasks.send_daily_digest",
        "schedule": crontab(hour=9, minute=0),
    },
    "risk-sweep": {
        "task": "risks.tasks.run_sweep",
        "schedule": float(RISK_SWEEP_SECONDS),
    },
    "retry-pending-scans": {
        "task": "orders.tasks.retry_pending_scans",
        "schedule": float(PENDING_SCAN_RETRY_SECONDS),
        "options": {"expires": float(PENDING_SCAN_RETRY_SECONDS)},
    },
    "apply-confirmation-deadlines": {
        "task": "orders.tasks.apply_deadlines",
        "schedule": float(DEADLINE_SWEEP_SECONDS),
    },
    # A run that waited a whole interval may expire: the next one computes the same figures.
    "refresh-stage-durations": {
        "task": "orders.tasks.refresh_stage_durations",
        "schedule": float(STAGE_DURATIONS_SECONDS),
        "options": {"expires": float(STAGE_DURATIONS_SECONDS)},
    },
    "resume-stalled-imports": {
        "task": "orders.imports.resume_stalled",
        "schedule": float(IMPORT_STALL_SECONDS),
        "options": {"expires": float(IMPORT_STALL_SECONDS)},
    },
    "refresh-dashboard-tallies": {
        "task": "portal.tasks.refresh_dashboard_tallies",
        "schedule": float(DASHBOARD_TALLY_SECONDS),
        "options": {"expires": float(DASHBOARD_TALLY_SECONDS)},
    },
}

# --- Authentication -------------------------------------------------------

AUTH_USER_MODEL = "portal.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # Django's model backend that also refuses people of an inactive organisation.
    "portal.access.PortalBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_int("AXES_COOLOFF_MINUTES", 30, minimum=1) / 60
# Lock the pair, so a guesser is stopped without letting anyone lock a
# colleague out from another address; and the address on its own, at a higher
# limit, so one address cannot try many user names (the handler below reads
# the pair first and the address second; docs/decisions.md).
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_HANDLER = "portal.access.AddressAwareLockoutHandler"
LOGIN_ADDRESS_FAILURE_LIMIT = env_int("LOGIN_ADDRESS_FAILURE_LIMIT", 30, minimum=1)
if LOGIN_ADDRESS_FAILURE_LIMIT < AXES_FAILURE_LIMIT:
    raise ImproperlyConfigured("LOGIN_ADDRESS_FAILURE_LIMIT must not be below AXES_FAILURE_LIMIT")
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

# --- Language, time, money -------------------------------------------------

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
FORMAT_MODULE_PATH = ["portal.formats"]
TIME_ZONE = env_str("TIME_ZONE", "Asia/Shanghai")
CELERY_TIMEZONE = TIME_ZONE
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
# Without DEBUG (production) static files come from `collectstatic`; in the
# demo and the tests whitenoise finds them in the apps directly.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Bootstrap's files come from the django-bootstrap-static package and are
# served by the portal itself, never from a CDN.
BOOTSTRAP5 = {
    "css_url": {"url": f"/{STATIC_URL}bootstrap/css/bootstrap.min.css"},
    "javascript_url": {"url": f"/{STATIC_URL}bootstrap/js/bootstrap.bundle.min.js"},
    "set_placeholder": False,
}

# --- API ------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.api_auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["portal.api_auth.HasOrganisation"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["portal.parsers.BoundedJSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["portal.api_auth.KeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        # Room for what SPEC §8 promises one integration (200 actions a
        # second; 1,000 scans a second in batches of 100) with a margin, and
        # still a ceiling for a client gone wrong (docs/deploy.md).
        "api": env_str("API_RATE", "15000/min"),
        "carrier": env_str("CARRIER_RATE", "3000/min"),
    },
    "EXCEPTION_HANDLER": "portal.api.exception_handler",
    # Client addresses for rate limits: X-Forwarded-For counts only behind this
    # many trusted proxies; with none it is ignored (anyone can send it).
    "NUM_PROXIES": env_int("TRUSTED_PROXIES", 0, minimum=0, maximum=10),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Appraisal Portal API",
    "DESCRIPTION": "Orders, workflow actions, worklists and carrier scans of the Appraisal Portal. "
    "Authenticate with `Authorization: Token <key>`; errors are `{code, detail, fields}`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "OrderStateEnum": "orders.choices.OrderState",
        "AppraisalResultEnum": "orders.choices.AppraisalResult",
        "ScanStatusEnum": "orders.choices.ScanStatus",
        "BlockedStageEnum": "orders.choices.BlockedStage",
        "VerifyOutcomeEnum": "orders.choices.VerifyOutcome",
        "RuleEnum": "risks.choices.Rule",
        "CaseStatusEnum": "risks.choices.CaseStatus",
        "EscalationStatusEnum": "risks.choices.EscalationStatus",
    },
}

# --- Mail -----------------------------------------------------------------

EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
NOTIFY_LEASE_SECONDS = env_int("NOTIFY_LEASE_SECONDS", 5 * EMAIL_TIMEOUT + 60, minimum=1)
# A refused email is retried after NOTIFY_RETRY_BASE_SECONDS, doubling up to
# NOTIFY_RETRY_MAX_SECONDS between attempts, for NOTIFY_RETRY_WINDOW_HOURS from
# its first failure; then it is marked failed (and can be sent again from the admin).
NOTIFY_RETRY_BASE_SECONDS = env_int("NOTIFY_RETRY_BASE_SECONDS", 60, minimum=1)
NOTIFY_RETRY_MAX_SECONDS = env_int("NOTIFY_RETRY_MAX_SECONDS", 1800, minimum=1)
NOTIFY_RETRY_WINDOW_HOURS = env_int("NOTIFY_RETRY_WINDOW_HOURS", 24, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Appraisal Portal <portal@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
    EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
    if EMAIL_USE_TLS and EMAIL_USE_SSL:
        raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL cannot both be on")
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = VAR_DIR / "mail"

# --- Security (production mode: DEBUG=0) -----------------------------------

SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", True) else None
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# Content-Security-Policy (django-csp 4 format): the pages load only their
# own static files; no inline script or style anywhere (htmx's indicator
# style is turned off in base.html, labels draw their barcodes with SVG
# attributes). Bootstrap's CSS uses data: SVG images for its icons.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# --- Logging --------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "axes": {"level": "WARNING"},
        # Labels use python-barcode's SVG output; its notice that Pillow (for
        # images) is missing says nothing an operator needs.
        "pyBarcode": {"level": "WARNING"},
    },
}
