import logging

from config.settings.env import env


class ClientErrorsWithoutTraceback(logging.Filter):
    """django.request logs a 403 (PermissionDenied) with the exception's traceback, as if it
    were a bug; a refused request is the code working. Keep the one-line warning, drop the
    traceback for 4xx answers; 5xx keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", 500) < 500:
            record.exc_info = None
            record.exc_text = None
        return True


LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "filters": {
        "client_errors_without_traceback": {"()": ClientErrorsWithoutTraceback},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Django's default config gives "django" a console handler of its own, which printed
        # every record a second time on its way up to root's handler: root's alone prints it.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.request": {"filters": ["client_errors_without_traceback"]},
        "django.db.backends": {"level": "WARNING"},
        # HTTP clients log every request at INFO (the simulator's live mode makes thousands).
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
    },
}
