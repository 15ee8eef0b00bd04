"""The ASGI application: HTTP through Django, websockets through Channels."""

import gc
import os
import sys

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402

if settings.WEB_THREADS:
    from django.core.wsgi import get_wsgi_application

    from config.http_bridge import WSGIBridge

    django_asgi_app = WSGIBridge(
        get_wsgi_application(), settings.WEB_THREADS, queue_timeout=settings.WEB_QUEUE_TIMEOUT
    )
    # The event loop and the request threads hand the interpreter to each other at every
    # database round trip; a thread that computes gives it up after 1 ms instead of
    # Python's 5 ms (booking p99 122-135 ms against 143-158 ms, docs/benchmarks.md).
    sys.setswitchinterval(0.001)

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
