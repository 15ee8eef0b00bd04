"""What happens after a workflow commits: pushes to relays (events to browsers are
scheduled by messaging.services the same way).

Each function registers its work with transaction.on_commit, so nobody hears of state that
was rolled back, and slow I/O never runs inside the transaction.
"""

from django.db import transaction

from relay_control.push import push_after_commit


def revocation_published(revocation_id: int) -> None:
    transaction.on_commit(lambda: push_after_commit(revocation_id))
