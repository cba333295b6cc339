"""The ASGI entry point: HTTP through Django, WebSockets through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Django must be set up before the routing imports consumers and models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from ads.services import server_start  # noqa: E402
from config.routing import WebSocketRouter, websocket_urlpatterns  # noqa: E402

# Import every view now (URL resolution would on the first request), then build the index,
# whose freeze takes all of it out of the garbage collector's sight: a full collection then
# walks a few thousand objects (under a millisecond) instead of tens of thousands.
get_resolver().url_patterns  # noqa: B018  (the property imports the URL modules)
server_start()  # build the index now and keep it (and the delivery state) current

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(WebSocketRouter(websocket_urlpatterns))
        ),
    }
)
