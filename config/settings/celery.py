"""Celery: Redis as broker in the full stack; eager, in-process tasks in the embedded default.

The beat schedule lives here, in one place; later issues add their nightly tasks to it.
"""

from celery.schedules import crontab

from config.settings.env import REDIS_URL, env

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 25 * 60
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Every periodic task is idempotent: running one twice for the same day gives the same rows.
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    # Each account's yesterday, at 01:xx in its own time zone (so the task runs hourly).
    "rollup-last-night": {
        "task": "analytics.tasks.rollup_last_night_task",
        "schedule": crontab(minute=15),
    },
    "rollup-today": {
        "task": "analytics.tasks.rollup_today_task",
        "schedule": crontab(minute="*/5"),
    },
    # The event table's daily partitions (PostgreSQL): made a week ahead, checked hourly;
    # the ones past EVENT_RETENTION_DAYS dropped once rolled up, after every zone's night.
    "event-partitions-make-ahead": {
        "task": "ads.tasks.event_partitions_make_ahead_task",
        "schedule": crontab(minute=5),
    },
    # The event totals a counter rebuild reads instead of the whole table: each run sums the
    # events up to the id its previous run noted.
    "event-totals-advance": {
        "task": "ads.tasks.event_totals_advance_task",
        "schedule": crontab(minute="*/15"),
    },
    "event-retention": {
        "task": "analytics.tasks.event_retention_task",
        "schedule": crontab(hour=4, minute=45),
    },
    # Retraining, after the night's rollups: each task takes its window and is idempotent.
    "retrain-ctr-model": {
        "task": "ads.tasks.retrain_ctr_model_task",
        "schedule": crontab(hour=3, minute=30),
    },
    "retrain-engagement-model": {
        "task": "engagement.tasks.retrain_engagement_model_task",
        "schedule": crontab(hour=2, minute=30),
    },
    # The live engagement score takes the engagement champion's prior: after its retraining.
    "retrain-live-score-model": {
        "task": "engagement.tasks.retrain_live_score_model_task",
        "schedule": crontab(hour=2, minute=50),
    },
    # Where each title's viewers drop off, and where its ad breaks should be (staff title page).
    "break-placement": {
        "task": "engagement.tasks.break_placement_task",
        "schedule": crontab(hour=3, minute=40),
    },
    # Drift of the champion's scores on yesterday against its training window (monitoring).
    "measure-ctr-drift": {
        "task": "ads.tasks.measure_ctr_drift_task",
        "schedule": crontab(hour=3, minute=0),
    },
}
