from django.core.exceptions import ImproperlyConfigured

from config.settings.env import BASE_DIR, env

DEFAULT_SECRET_KEY = "django-insecure-interlude-embedded-default-do-not-deploy"

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=DEFAULT_SECRET_KEY)
if not DEBUG and SECRET_KEY == DEFAULT_SECRET_KEY:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is the embedded default; "
        "set a secret of your own when DJANGO_DEBUG=false."
    )

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from static/, not a CDN
    "django_htmx",
    "django_celery_beat",
    "channels",
    "csp",  # Content-Security-Policy: config/settings/security.py
    "axes",  # login throttling: config/settings/login.py
    # Interlude, in layer order (DESIGN.md): each imports only from those above it here.
    "catalog",
    "ml",
    "ads",
    "engagement",
    "analytics",
    "insights",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.security.ContentSecurityPolicyMiddleware",  # config/settings/security.py
    "config.static.StaticFilesMiddleware",  # WhiteNoise, native under ASGI too
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a refused login into the lockout page
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
            # The one way pages write counts and amounts ({% load numbers %}).
            "libraries": {"numbers": "config.formats"},
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
SUPPORTED_DATABASES = {"django.db.backends.postgresql", "django.db.backends.sqlite3"}
if DATABASES["default"].get("ENGINE") not in SUPPORTED_DATABASES:
    raise ImproperlyConfigured(
        "DATABASE_URL must be postgres://USER:PASSWORD@HOST:PORT/NAME or sqlite:///PATH."
    )
# 0 under ASGI: Django's persistent connections are per thread, and the ASGI handler runs
# each request's sync code in a fresh thread, so kept connections pile up instead of being
# reused (use a pooler such as PgBouncer in front of PostgreSQL for reuse). The `api` process
# (WSGI: loop and pool threads that live as long as the worker) keeps them: config/api_server.py.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
# The ASGI server's threads for the integration API's paths (config/api_asgi.py) live as long as
# the worker, as the api process's do, and keep their connections as long as those do.
API_PATHS_CONN_MAX_AGE = env.int("API_PATHS_CONN_MAX_AGE", default=60)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The demo runs several processes on one file (server, scheduler, audience): WAL lets
    # readers go on while one writes; a writer waits up to `timeout` seconds for another
    # instead of failing at once; and IMMEDIATE transactions take the write lock when they
    # begin, because a read transaction that later writes fails at once when another process
    # wrote meanwhile (SQLITE_BUSY), whatever the timeout.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "accounts"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
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
# Serve straight from the app folders in development, so the demo needs no collectstatic.
WHITENOISE_USE_FINDERS = DEBUG
MEDIA_ROOT = BASE_DIR / "media"
MEDIA_URL = "media/"
