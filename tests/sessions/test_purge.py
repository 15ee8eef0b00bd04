"""Purging the deny list never removes an entry before exp + leeway."""

import uuid
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from relay_control.models import Revocation, RevocationCounter
from relay_control.services import revocation_purge
from tests.conftest import NOW


@pytest.mark.django_db
@hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    offsets=st.lists(st.integers(min_value=-7200, max_value=7200), min_size=0, max_size=12),
    advance=st.integers(min_value=-600, max_value=10_000),
)
def test_purge_keeps_every_entry_until_exp_plus_leeway(django_settings_leeway, offsets, advance):
    Revocation.objects.all().delete()
    for seq, offset in enumerate(offsets, start=1):
        Revocation.objects.create(
            seq=seq,
            booking_id=uuid.uuid4(),
            exp=NOW + timedelta(seconds=offset),
            revoked_at=NOW,
            reason="cancelled",
        )
    now = NOW + timedelta(seconds=advance)
    leeway = timedelta(seconds=django_settings_leeway)
    removed = revocation_purge(now=now)
    kept = list(Revocation.objects.values_list("seq", "exp"))
    expected_kept = {
        seq
        for seq, offset in enumerate(offsets, 1)
        if NOW + timedelta(seconds=offset) + leeway >= now
    }
    assert {seq for seq, _ in kept} == expected_kept
    assert removed == len(offsets) - len(expected_kept)
    if removed:
        purged = set(range(1, len(offsets) + 1)) - expected_kept
        assert RevocationCounter.objects.get(pk=1).purged_through >= max(purged)


@pytest.fixture
def django_settings_leeway(settings):
    settings.REVOCATION_LEEWAY_SECONDS = 300
    return 300
