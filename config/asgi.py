"""The ASGI entry point (the `web` process): HTTP through Django, WebSockets through Channels;
the integration API's paths (decisions, event batches, tracking links, the ad tags) through the
api process's WSGI application in one thread hop (config/api_asgi.py), as config.wsgi routes
them."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Django must be set up before the routing imports consumers and models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from ads import api  # noqa: E402
from ads.services import server_start  # noqa: E402
from ads.vast import answers  # noqa: E402
from config.api_asgi import APIPaths  # noqa: E402
from config.api_wsgi import APIHandler, HotPath  # noqa: E402
from config.routing import WebSocketRouter, websocket_urlpatterns  # noqa: E402

api_paths = APIPaths(
    django_asgi_app,
    HotPath(APIHandler(), api, answers),
    threads=int(os.environ.get("API_THREADS", "2")),  # as the api process's workers have
    conn_max_age=settings.API_PATHS_CONN_MAX_AGE,
)

# Import every view now (URL resolution would on the first request), then build the index,
# whose freeze takes all of it out of the garbage collector's sight: a full collection then
# walks a few thousand objects (under a millisecond) instead of tens of thousands.
get_resolver().url_patterns  # noqa: B018  (the property imports the URL modules)
server_start()  # build the index now and keep it (and the delivery state) current

application = ProtocolTypeRouter(
    {
        "http": api_paths,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(WebSocketRouter(websocket_urlpatterns))
        ),
    }
)
