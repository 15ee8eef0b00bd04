"""The manifest in admin: download the export; upload, see the dry run, then apply."""

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from booking.admin_pages import MANIFEST_CHANGED_SINCE, MANIFEST_NO_CHANGES
from booking.models import AuditEntry, Experiment, Group, Relay
from booking.services.groups import access_code_hash
from tests.admin import form_data, persona_user
from tests.conftest import client_for

MANIFEST = """
relays:
  relay-m: {access_url: "https://relay.example.org/access", algorithm: HS256,
            secret_env: RELAY_M_SECRET}
experiments:
  truss00:
    title: Truss 00
    streams:
      data: {relay: relay-m, scopes: [read]}
  pend00:
    title: Pendulum zero
    topic_stub: pend00
    streams:
      data: {relay: relay-a, scopes: [read, write]}
      video: {relay: relay-a, scopes: [read]}
groups:
  open-day:
    title: Open day
    pools: [pendulums]
"""
DIFF = [
    "+ relay relay-m",
    '~ experiment pend00: title Pend00 -> "Pendulum zero"',
    "+ experiment truss00",
    "+ group open-day (a new access code is generated)",
]


@pytest.fixture
def manager_client(lab):
    return client_for(persona_user(lab, "lab_manager"))


def url() -> str:
    return reverse("admin:booking_experiment_manifest")


def catalogue() -> list:
    return [
        sorted(Relay.objects.values_list("slug", flat=True)),
        sorted(Experiment.objects.values_list("slug", "title")),
        sorted(Group.objects.values_list("slug", flat=True)),
        AuditEntry.objects.count(),
    ]


def dry_run(client, text: str = MANIFEST):
    upload = SimpleUploadedFile("lab.yaml", text.encode(), content_type="application/yaml")
    return client.post(url(), {"file": upload, "plan": "Dry run"})


def test_the_export_downloads_the_catalogue_without_secrets(lab, manager_client):
    page = manager_client.get(url())
    assert page.status_code == 200
    export_url = reverse("admin:booking_experiment_manifest_export")
    assert export_url in page.content.decode()
    download = manager_client.get(export_url)
    assert download["Content-Type"].startswith("application/yaml")
    assert "attachment" in download["Content-Disposition"]
    data = yaml.safe_load(download.content)
    assert set(data["experiments"]) == {"pend00", "pend01", "dev00", "spin00"}
    assert data["relays"]["relay-a"]["secret_env"] == "RELAY_TEST_SECRET"
    assert "access_code" not in str(data)


def test_a_dry_run_shows_the_diff_and_changes_nothing(lab, manager_client):
    before = catalogue()
    response = dry_run(manager_client)
    assert response.status_code == 200
    assert response.context["lines"] == DIFF
    assert "Pendulum zero" in response.content.decode()
    assert catalogue() == before


def test_applying_makes_the_changes_shown(lab, manager_client):
    plan = dry_run(manager_client)
    data = form_data(plan.content.decode())
    data["apply"] = ["Apply these changes"]
    applied = manager_client.post(url(), data)
    assert applied.status_code == 200
    lines = applied.context["applied_lines"]
    assert lines[:4] == DIFF
    assert Experiment.objects.get(slug="pend00").title == "Pendulum zero"
    assert Experiment.objects.filter(slug="truss00").exists()
    entry = AuditEntry.objects.filter(object_type="booking.experiment", object_id__isnull=False)
    assert entry.filter(actor__username="lab-manager").exists()

    # A new group's access code is shown in that response, once; only its hash is kept.
    code = lines[4].split("open-day: ")[1].split(" ")[0]
    assert Group.objects.get(slug="open-day").access_code_hash == access_code_hash(code)
    assert code not in manager_client.get(url()).content.decode()

    again = dry_run(manager_client)
    assert again.context["lines"] == []
    assert MANIFEST_NO_CHANGES in [str(m) for m in again.context["messages"]]


def test_apply_rechecks_and_stops_when_the_catalogue_changed_since_the_dry_run(lab, manager_client):
    data = form_data(dry_run(manager_client).content.decode())
    Experiment.objects.filter(slug="pend00").update(title="Changed meanwhile")
    before = catalogue()
    data["apply"] = ["Apply these changes"]
    response = manager_client.post(url(), data)
    assert MANIFEST_CHANGED_SINCE in response.content.decode()
    assert (
        '~ experiment pend00: title "Changed meanwhile" -> "Pendulum zero"'
        in (response.context["lines"])
    )
    assert catalogue() == before


def test_a_tampered_text_is_not_applied_unseen(lab, manager_client):
    data = form_data(dry_run(manager_client).content.decode())
    data["text"] = [MANIFEST.replace("Truss 00", "Something else")]
    data["apply"] = ["Apply these changes"]
    before = catalogue()
    response = manager_client.post(url(), data)
    assert MANIFEST_CHANGED_SINCE in response.content.decode()
    assert catalogue() == before
    assert "Something else" in form_data(response.content.decode())["text"][0]


def test_an_invalid_manifest_is_refused_with_its_error(lab, manager_client):
    before = catalogue()
    response = dry_run(manager_client, "experiments:\n  bad slug!: {title: x}\n")
    assert response.status_code == 200
    assert "The manifest is not valid" in response.content.decode()
    response = dry_run(manager_client, MANIFEST.replace("relay: relay-m,", "relay: relay-unknown,"))
    assert "relay-unknown" in response.content.decode()
    assert catalogue() == before


@pytest.mark.parametrize("persona", ["experiment_maintainer", "pool_manager", "own_maintainer"])
def test_only_a_lab_manager_may_use_the_manifest(lab, manager_client, persona):
    data = form_data(dry_run(manager_client).content.decode())
    data["apply"] = ["Apply these changes"]
    before = catalogue()
    client = client_for(persona_user(lab, persona))
    assert client.get(url()).status_code == 403
    assert client.get(reverse("admin:booking_experiment_manifest_export")).status_code == 403
    assert dry_run(client).status_code == 403
    assert client.post(url(), data).status_code == 403
    assert catalogue() == before
