"""The WSGI entry point: the `api` process of the Procfile (config/api_server.py), and
`manage.py runserver`. The integration API's paths take a lean middleware stack
(config/api_wsgi.py); everything else the full one."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

full_application = get_wsgi_application()  # sets Django up

from django.urls import get_resolver  # noqa: E402

from ads import api  # noqa: E402
from ads.services import server_start  # noqa: E402
from ads.vast import answers  # noqa: E402
from config.api_wsgi import APIHandler, HotPath, routed  # noqa: E402

api_application = HotPath(APIHandler(), api, answers)  # config.asgi makes its own
application = routed(full_application, api_application)

# Import every view now (URL resolution would on the first request), then build the index,
# whose freeze takes all of it out of the garbage collector's sight: a full collection then
# walks a few thousand objects (under a millisecond) instead of tens of thousands.
get_resolver().url_patterns  # noqa: B018  (the property imports the URL modules)
# Each worker imports this module itself (config/wsgi_server.py loads it after the fork), so the
# thread runs in the process that serves: threads do not survive a fork.
server_start()
