"""What happens after a workflow commits: pushes to relays and events to browsers.

Each function registers its work with transaction.on_commit, so nobody hears of state that
was rolled back, and slow I/O never runs inside the transaction.
"""

import logging

from django.db import transaction

log = logging.getLogger(__name__)

_listeners: dict[str, list] = {"revocation": [], "cancelled": [], "extended": []}


def listen(kind: str, handler) -> None:
    """Upper layers (relay push, websocket events) register here at start-up."""
    if handler not in _listeners[kind]:
        _listeners[kind].append(handler)


def _fire(kind: str, *args: object) -> None:
    for handler in _listeners[kind]:
        try:
            handler(*args)
        except Exception:  # a failed notification must not undo a committed change
            log.exception("after-commit %s handler failed", kind)


def revocation_published(revocation_id: int) -> None:
    transaction.on_commit(lambda: _fire("revocation", revocation_id))


def booking_cancelled(booking_id: object) -> None:
    transaction.on_commit(lambda: _fire("cancelled", booking_id))


def booking_extended(booking_id: object) -> None:
    transaction.on_commit(lambda: _fire("extended", booking_id))
