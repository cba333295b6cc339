"""Settings, one module per concern; every value comes from the environment.

With nothing set, the embedded defaults run anywhere: SQLite, local-memory cache, the
in-memory channel layer, eager Celery tasks, and counters in a SQLite file beside the database.
``DATABASE_URL`` and ``REDIS_URL`` switch to PostgreSQL and Redis. ``.env.example`` lists every
variable.
"""

from config.settings.ad_load import *  # noqa: F403
from config.settings.api import *  # noqa: F403
from config.settings.cache import *  # noqa: F403
from config.settings.celery import *  # noqa: F403
from config.settings.channels import *  # noqa: F403
from config.settings.counters import *  # noqa: F403
from config.settings.ctr import *  # noqa: F403
from config.settings.dashboards import *  # noqa: F403
from config.settings.django import *  # noqa: F403
from config.settings.events import *  # noqa: F403
from config.settings.llm import *  # noqa: F403
from config.settings.logging import *  # noqa: F403
from config.settings.login import *  # noqa: F403
from config.settings.security import *  # noqa: F403
