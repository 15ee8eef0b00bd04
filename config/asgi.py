"""The ASGI application: HTTP through Django, websockets through Channels."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from config.routing import websocket_urlpatterns  # noqa: E402
from config.scheduler import start_in_process_jobs  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Origins are checked by each consumer (UI origins come from the catalogue).
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)

start_in_process_jobs()

# As in config/wsgi.py: full garbage collections skip what was loaded at start-up.
gc.freeze()
