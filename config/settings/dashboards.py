"""The dashboards' own clocks."""

from django.core.exceptions import ImproperlyConfigured

from config.settings.env import env

# Seconds between the staff executive dashboard's polls of its figures (htmx `every Ns`);
# the browser tests shorten it rather than wait out five seconds.
STAFF_DASHBOARD_REFRESH_SECONDS = env.int("STAFF_DASHBOARD_REFRESH_SECONDS", default=5)
if STAFF_DASHBOARD_REFRESH_SECONDS < 1:
    raise ImproperlyConfigured("STAFF_DASHBOARD_REFRESH_SECONDS must be at least 1.")
