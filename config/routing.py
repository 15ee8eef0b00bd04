from django.urls import path

from messaging.consumers import SessionConsumer, UserConsumer
from relay_control.consumers import RelayConsumer

websocket_urlpatterns = [
    path("ws/session/", SessionConsumer.as_asgi()),
    path("ws/user/", UserConsumer.as_asgi()),
    path("ws/relay/", RelayConsumer.as_asgi()),
]
