"""Login throttling (django-axes, see config/login.py): per username and per address."""

from datetime import timedelta

from config.settings.env import env

AUTHENTICATION_BACKENDS = [
    "config.login.LoginThrottleBackend",  # first: refuses a locked-out login before checking it
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_COOLOFF_MINUTES", default=15))
# Either one locks: a username tried from many addresses, or an address trying many usernames.
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
# How many proxies in front of the site append to X-Forwarded-For (0: clients connect directly).
LOGIN_TRUSTED_PROXIES = env.int("LOGIN_TRUSTED_PROXIES", default=0)
AXES_CLIENT_IP_CALLABLE = "config.login.client_address"
AXES_LOCKOUT_CALLABLE = "config.login.locked_out"
# Failures only (who tried what, from where), not a row for every successful login.
AXES_DISABLE_ACCESS_LOG = True
# No start-up banner in every command's output; failures are still logged with the username
# and address that count.
AXES_VERBOSE = False
