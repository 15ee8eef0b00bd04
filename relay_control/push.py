"""Delivering revocations to relays: the practable deny call, and the /ws/relay/ event.

Deliveries are rows written with the revocation (the outbox). Right after the commit a
background thread of this process delivers them; the periodic sweep retries whatever is
still pending, with backoff, until the relay answers 2xx or the tokens have expired. A row
is claimed with a conditional update, so two workers never send the same attempt.
"""

import logging
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from booking.live import group_send_many
from relay_control.models import Revocation, RevocationDelivery
from sessions_app.tokens import RelaySecretMissing, relay_admin_token

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=30)
MAX_BACKOFF = 60
_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="relay-push")


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(MAX_BACKOFF, 2 ** max(0, attempts - 1)))


def relay_group(relay_id: int) -> str:
    return f"relay-{relay_id}"


def _post_deny(delivery: RevocationDelivery, now: datetime) -> tuple[bool, str]:
    relay = delivery.relay
    revocation = delivery.revocation
    query = urlencode({"bid": str(revocation.booking_id), "exp": int(revocation.exp.timestamp())})
    url = f"{relay.access_url.rstrip('/')}/bids/deny?{query}"
    if not url.startswith(("http://", "https://")):
        return False, "the relay's access URL is not http(s)"
    try:
        token = relay_admin_token(relay, now=now)
    except RelaySecretMissing as error:
        return False, str(error)
    # The practable relay wants the raw token, without "Bearer ".
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url, method="POST", headers={"Authorization": token}, data=b""
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.RELAY_PUSH_TIMEOUT) as response:  # noqa: S310
            return 200 <= response.status < 300, f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return False, f"HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return False, f"unreachable: {getattr(error, 'reason', error)}"


def deliver_one(delivery_id: int, *, now: datetime | None = None) -> str:
    """Try one delivery if it is due; returns its state afterwards ('' if not ours)."""
    now = now or timezone.now()
    claimed = RevocationDelivery.objects.filter(
        pk=delivery_id, state=RevocationDelivery.State.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=now + LEASE)
    if not claimed:
        return ""
    delivery = RevocationDelivery.objects.select_related("relay", "revocation").get(pk=delivery_id)
    if delivery.revocation.exp <= now:
        # The relay refuses a deny whose exp has passed, and the tokens are dead anyway.
        delivery.state = RevocationDelivery.State.EXPIRED
        delivery.save(update_fields=["state"])
        return delivery.state
    ok, outcome = _post_deny(delivery, now)
    delivery.attempts += 1
    delivery.last_error = "" if ok else outcome[:300]
    if ok:
        delivery.state = RevocationDelivery.State.DELIVERED
        delivery.delivered_at = timezone.now()
        log.info(
            "deny delivered: booking %s to relay %s",
            delivery.revocation.booking_id,
            delivery.relay.slug,
        )
    else:
        delivery.next_attempt_at = now + backoff(delivery.attempts)
        log.warning(
            "deny to relay %s failed (%s), attempt %d, next at %s",
            delivery.relay.slug,
            outcome,
            delivery.attempts,
            delivery.next_attempt_at.isoformat(),
        )
    delivery.save(
        update_fields=["attempts", "last_error", "state", "delivered_at", "next_attempt_at"]
    )
    return delivery.state


def deliver_due(*, now: datetime, limit: int = 200) -> dict[str, int]:
    """The sweep: every pending delivery whose time has come."""
    due = list(
        RevocationDelivery.objects.filter(
            state=RevocationDelivery.State.PENDING, next_attempt_at__lte=now
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    counts: dict[str, int] = {}
    for delivery_id in due:
        state = deliver_one(delivery_id, now=now)
        if state:
            counts[state] = counts.get(state, 0) + 1
    return counts


def _deliver_revocation(revocation_id: int) -> None:
    try:
        for delivery_id in RevocationDelivery.objects.filter(
            revocation_id=revocation_id, state=RevocationDelivery.State.PENDING
        ).values_list("pk", flat=True):
            deliver_one(delivery_id)
    except Exception:  # the sweep will try again
        log.exception("push of revocation %s failed", revocation_id)
    finally:
        close_old_connections()


def _announce(revocation_id: int) -> None:
    """Tell relays holding /ws/relay/ open. Best effort: the feed is the record."""
    try:
        revocation = Revocation.objects.get(pk=revocation_id)
        relay_ids = list(revocation.deliveries.values_list("relay_id", flat=True))
        event = {
            "type": "revocation.event",
            "payload": {
                "type": "revocation",
                "seq": revocation.seq,
                "booking_id": str(revocation.booking_id),
                "exp": int(revocation.exp.timestamp()),
                **({"jti": revocation.jti} if revocation.jti else {}),
            },
        }
        group_send_many((relay_group(relay_id), event) for relay_id in relay_ids)
    except Exception:
        log.warning("revocation %s not announced on /ws/relay/", revocation_id, exc_info=True)
    finally:
        close_old_connections()


def push_after_commit(revocation_id: int) -> None:
    """Called once the revocation is committed: never inside the request's transaction."""
    if settings.RELAY_PUSH_IN_PROCESS:
        _executor.submit(_deliver_revocation, revocation_id)
    _executor.submit(_announce, revocation_id)
