"""The ad event table's days (PostgreSQL: one partition per UTC day, `ads.services.partitions`).

Partitions are made EVENT_PARTITIONS_AHEAD_DAYS ahead by a beat task; a day's partition is
detached and dropped once it is older than EVENT_RETENTION_DAYS and the rollups have counted its
events (the daily rollup tables keep the history). The CTR model trains on the last 14 days of
events, and counter rebuilds read the last two: a retention shorter than 15 days is refused.
"""

from django.core.exceptions import ImproperlyConfigured

from config.settings.env import env

EVENT_RETENTION_DAYS = env.int("EVENT_RETENTION_DAYS", default=400)
EVENT_PARTITIONS_AHEAD_DAYS = env.int("EVENT_PARTITIONS_AHEAD_DAYS", default=7)
if EVENT_RETENTION_DAYS < 15:
    raise ImproperlyConfigured("EVENT_RETENTION_DAYS must be at least 15 (the CTR model's window).")
if EVENT_PARTITIONS_AHEAD_DAYS < 1:
    raise ImproperlyConfigured("EVENT_PARTITIONS_AHEAD_DAYS must be at least 1.")
