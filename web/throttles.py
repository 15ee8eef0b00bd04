"""The API's per-address throttles, applied to the pages that take the same guesses
(access codes, booking references), so a page is no way around the API's limits."""

from django.http import HttpRequest

from booking.apis import AddressThrottle

JOIN = "join"
LOOKUP = "lookup"


class _Scoped:
    """What the throttle reads from a view: the name of its rate."""

    def __init__(self, scope: str):
        self.throttle_scope = scope


def address_allowed(request: HttpRequest, scope: str) -> bool:
    """Count this request against the address's budget for `scope`; False when spent."""
    return AddressThrottle().allow_request(request, _Scoped(scope))
