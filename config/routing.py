from django.urls import path

from relay_control.consumers import RelayConsumer

websocket_urlpatterns = [
    path("ws/relay/", RelayConsumer.as_asgi()),
]
