"""Who may do what in admin: every role against every admin model and every lab action,
through the real admin URLs. A refusal is a 403, a 404, or (not staff) the login page, and
leaves the database as it was."""

import uuid
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from urllib.parse import quote_plus

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Group as Role
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import models
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from booking.admin_permissions import snapshot
from booking.audit import audit_record
from booking.models import (
    UI,
    AuditEntry,
    Booking,
    BookingStatus,
    Experiment,
    Group,
    Pool,
    Relay,
    UISet,
)
from booking.roles import LAB_MANAGER, ROLE_NAMES, ROLE_PERMISSIONS, roles_setup
from messaging.models import Message, SurveyResponse
from messaging.services import message_send
from relay_control.api_tokens import relay_token_create
from relay_control.models import RelayApiToken, Revocation, RevocationDelivery
from sessions_app.models import Session, SigningKey
from tests.admin import PERSONAS, form_data, persona_user, refused, superuser_client
from tests.conftest import Lab, client_for
from tests.factories import make_booking, make_relay, make_user

VACD = {"view", "add", "change", "delete"}
OPS = ("view", "add", "change", "delete")

# --- targets ---------------------------------------------------------------------------------


def _booking(lab: Lab) -> Booking:
    return make_booking(lab.student, lab.pool, lab.pend00, timezone.now() + timedelta(days=1))


def _session(lab: Lab) -> Session:
    booking = make_booking(
        lab.student, lab.pool, lab.pend00, timezone.now(), status=BookingStatus.STARTED
    )
    return Session.objects.create(
        booking=booking, salt="s", code_hash="0" * 64, created_at=timezone.now()
    )


def _revocation() -> Revocation:
    now = timezone.now()
    return Revocation.objects.create(
        seq=1, booking_id=uuid.uuid4(), exp=now + timedelta(hours=1), revoked_at=now, reason="x"
    )


def _signing_key() -> SigningKey:
    return SigningKey.objects.create(
        kid="k1",
        algorithm="EdDSA",
        private_encrypted=b"x",
        public_jwk={},
        created_at=timezone.now(),
    )


Target = Callable[[Lab, str], models.Model]
TARGETS: dict[str, tuple[type[models.Model], Target]] = {
    "experiment": (
        Experiment,
        lambda lab, who: lab.hidden if who == "own_maintainer" else lab.pend01,
    ),
    "pool": (Pool, lambda lab, who: lab.other_pool),
    "group": (Group, lambda lab, who: lab.group),
    "ui": (UI, lambda lab, who: UI.objects.create(slug="ui-a", title="UI", url="https://ui.test/")),
    "uiset": (UISet, lambda lab, who: UISet.objects.create(slug="set-a")),
    "relay": (Relay, lambda lab, who: make_relay("relay-z")),
    "booking": (Booking, lambda lab, who: _booking(lab)),
    "auditentry": (
        AuditEntry,
        lambda lab, who: audit_record(
            at=timezone.now(), actor=None, action="test", obj=lab.pend00, actor_label="test"
        ),
    ),
    "user": (User, lambda lab, who: make_user("target-user")),
    "role": (Role, lambda lab, who: Role.objects.create(name="Helpers")),
    "session": (Session, lambda lab, who: _session(lab)),
    "signingkey": (SigningKey, lambda lab, who: _signing_key()),
    "relayapitoken": (
        RelayApiToken,
        lambda lab, who: relay_token_create(relay=lab.relay, now=timezone.now())[0],
    ),
    "revocation": (Revocation, lambda lab, who: _revocation()),
    "revocationdelivery": (
        RevocationDelivery,
        lambda lab, who: RevocationDelivery.objects.create(
            revocation=_revocation(), relay=lab.relay
        ),
    ),
    "message": (
        Message,
        lambda lab, who: message_send(target="everyone", text="Hello", now=timezone.now()),
    ),
    "surveyresponse": (
        SurveyResponse,
        lambda lab, who: SurveyResponse.objects.create(
            session=_session(lab), submitted_at=timezone.now(), answers={}
        ),
    ),
}

# --- what each persona may do (everything not listed: nothing) --------------------------------

EXPECTED: dict[str, dict[str, set[str]]] = {
    "experiment": {
        "lab_manager": VACD,
        "experiment_maintainer": {"view", "add", "change"},
        "pool_manager": {"view"},
        "own_maintainer": {"view", "change"},
    },
    "pool": {
        "lab_manager": VACD,
        "pool_manager": {"view", "change"},
        "policy_editor": {"view", "change"},
    },
    "group": {"lab_manager": VACD},
    "ui": {"lab_manager": VACD},
    "uiset": {"lab_manager": VACD},
    "relay": {"lab_manager": VACD, "experiment_maintainer": {"view"}},
    "booking": {"lab_manager": {"view"}},
    "auditentry": {"lab_manager": {"view"}},
    "user": {"lab_manager": VACD},
    "role": {"lab_manager": VACD},
    "session": {"lab_manager": {"view"}},
    "signingkey": {"lab_manager": {"view"}},
    "relayapitoken": {"lab_manager": {"view"}},
    "revocation": {"lab_manager": {"view"}},
    "revocationdelivery": {"lab_manager": {"view"}},
    "message": {"lab_manager": {"view", "add"}},
    "surveyresponse": {"lab_manager": {"view"}},
}

# --- the change each persona tries: edits the POST data, returns "did it land?" --------------

Mutation = Callable[[dict, Lab], Callable[[models.Model], bool]]


def _set(field: str, value: str, expected: object = None) -> Mutation:
    def mutate(data: dict, lab: Lab):
        data[field] = [value]
        return lambda obj: getattr(obj, field) == (value if expected is None else expected)

    return mutate


def _add_pend00(data: dict, lab: Lab):
    data["experiments"] = [*data.get("experiments", []), str(lab.pend00.pk)]
    return lambda obj: obj.experiments.filter(pk=lab.pend00.pk).exists()


MUTATIONS: dict[str, Mutation] = {
    "experiment": _set("description", "Now with a longer arm."),
    "pool": _set("title", "Other things"),
    "pool/pool_manager": _add_pend00,
    "pool/policy_editor": _set("max_duration", "45m", 2700),
    "group": _set("title", "Course X, spring"),
    "ui": _set("title", "Pendulum UI 2"),
    "uiset": _set("slug", "set-b"),
    "relay": _set("access_url", "http://127.0.0.1:9/moved/access"),
    "user": _set("first_name", "Renamed"),
    "role": _set("name", "Helpers 2"),
    "message": _set("text", "Edited"),
}
NO_MUTATION: Mutation = lambda data, lab: lambda obj: False  # noqa: E731


def _urls(model: type[models.Model], obj: models.Model) -> dict[str, str]:
    base = f"admin:{model._meta.app_label}_{model._meta.model_name}"
    return {
        "changelist": reverse(f"{base}_changelist"),
        "add": reverse(f"{base}_add"),
        "change": reverse(f"{base}_change", args=[quote(obj.pk)]),
        "delete": reverse(f"{base}_delete", args=[quote(obj.pk)]),
    }


def _state(model: type[models.Model], pk: object) -> dict | None:
    obj = model._default_manager.filter(pk=pk).first()
    return None if obj is None else snapshot(obj)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("key", list(TARGETS))
@pytest.mark.parametrize("persona", PERSONAS)
def test_the_permission_matrix(lab, persona, key, op):
    roles_setup()
    model, make = TARGETS[key]
    target = make(lab, persona)
    urls = _urls(model, target)
    allowed = op in EXPECTED[key].get(persona, set())
    client = client_for(persona_user(lab, persona))
    before = _state(model, target.pk)

    if op == "view":
        listing = client.get(urls["changelist"])
        page = client.get(urls["change"])
        listed = listing.status_code == 200 and urls["change"] in listing.content.decode()
        if allowed:
            assert listed and page.status_code == 200
        else:
            assert not listed and (refused(listing) or listing.status_code == 200)
            assert refused(page)
    elif op == "add":
        response = client.get(urls["add"])
        assert response.status_code == 200 if allowed else refused(response)
    elif op == "change":
        page = superuser_client().get(urls["change"]).content.decode()
        change_data = form_data(page, f"{model._meta.model_name}_form")
        mutation = MUTATIONS.get(f"{key}/{persona}") or MUTATIONS.get(key, NO_MUTATION)
        landed = mutation(change_data, lab)
        response = client.post(urls["change"], change_data)
        if allowed:
            assert response.status_code == 302, response.content.decode()[:3000]
            assert landed(model._default_manager.get(pk=target.pk))
        else:
            assert refused(response)
    else:
        response = client.post(urls["delete"], {"post": "yes"})
        if allowed:
            assert response.status_code == 302
            assert not model._default_manager.filter(pk=target.pk).exists()
        else:
            assert refused(response)

    if not allowed:
        assert _state(model, target.pk) == before


# --- the lab actions and pages -------------------------------------------------------------

MANIFEST = """
relays:
  relay-m: {access_url: "https://relay.example.org/access", algorithm: HS256,
            secret_env: RELAY_M_SECRET}
experiments:
  truss00:
    title: Truss 00
    streams:
      data: {relay: relay-m, scopes: [read]}
"""


def _now_field() -> str:
    return f"{timezone.localtime():%Y-%m-%dT%H:%M}"


def _out_of_service(client: Client, lab: Lab, persona: str):
    experiment = lab.hidden if persona == "own_maintainer" else lab.pend01
    url = reverse("admin:booking_experiment_out_of_service") + f"?ids={experiment.pk}"
    response = client.post(url, {"reason": "motor", "start": _now_field(), "move": "on"})
    return response, lambda: not Experiment.objects.get(pk=experiment.pk).available


def _cancel_with_reason(client: Client, lab: Lab, persona: str):
    booking = _booking(lab)
    url = reverse("admin:booking_booking_cancel") + f"?ids={booking.pk}"
    response = client.post(url, {"reason": "lab closed"})
    return response, lambda: Booking.objects.get(pk=booking.pk).status == BookingStatus.CANCELLED


def _rotate_access_code(client: Client, lab: Lab, persona: str):
    url = reverse("admin:booking_group_access_code", args=[lab.group.pk])
    response = client.post(url, {"expires_at": "", "max_uses": "5"})
    return response, lambda: Group.objects.get(pk=lab.group.pk).access_code_hash != ""


def _create_relay_token(client: Client, lab: Lab, persona: str):
    url = reverse("admin:booking_relay_api_token", args=[lab.relay.pk])
    response = client.post(url, {"name": "relay host"})
    return response, lambda: RelayApiToken.objects.filter(relay=lab.relay).exists()


def _usage_report(client: Client, lab: Lab, persona: str):
    response = client.get(reverse("admin:booking_booking_report"))
    return response, lambda: response.status_code == 200


def _manifest_upload(client: Client, lab: Lab, persona: str):
    url = reverse("admin:booking_experiment_manifest")
    response = client.post(url, {"text": MANIFEST, "plan": "Dry run"})
    if response.status_code == 200:
        data = form_data(response.content.decode())
        data["apply"] = ["Apply"]
        response = client.post(url, data)
    return response, lambda: Experiment.objects.filter(slug="truss00").exists()


LAB_ACTIONS = {
    "out_of_service": (_out_of_service, {"lab_manager", "experiment_maintainer", "own_maintainer"}),
    "cancel_with_reason": (_cancel_with_reason, {"lab_manager"}),
    "rotate_access_code": (_rotate_access_code, {"lab_manager"}),
    "create_relay_token": (_create_relay_token, {"lab_manager"}),
    "usage_report": (_usage_report, {"lab_manager"}),
    "manifest_upload": (_manifest_upload, {"lab_manager"}),
}


@pytest.mark.parametrize("action", list(LAB_ACTIONS))
@pytest.mark.parametrize("persona", PERSONAS)
def test_the_lab_actions_matrix(lab, persona, action):
    roles_setup()
    perform, allowed = LAB_ACTIONS[action]
    client = client_for(persona_user(lab, persona))
    audit_before = AuditEntry.objects.count()
    response, done = perform(client, lab, persona)
    if persona in allowed:
        assert response.status_code in (200, 302)
        assert done()
    else:
        assert refused(response)
        assert not done() if action != "usage_report" else True
        assert AuditEntry.objects.count() == audit_before


# --- details the matrix does not show ------------------------------------------------------


def test_each_role_is_a_group_with_exactly_its_permissions(db):
    roles_setup()
    roles_setup()  # idempotent
    for name in ROLE_NAMES:
        role = Role.objects.get(name=name)
        held = {f"{p.content_type.app_label}.{p.codename}" for p in role.permissions.all()}
        assert ROLE_PERMISSIONS[name] <= held
        if name != LAB_MANAGER:
            assert held == ROLE_PERMISSIONS[name]
    assert Role.objects.filter(name__in=ROLE_NAMES).count() == len(ROLE_NAMES)


def test_the_roles_exist_after_migrating(db):
    """The data migration made them (tests run on a migrated database)."""
    assert set(Role.objects.filter(name__in=ROLE_NAMES).values_list("name", flat=True)) == set(
        ROLE_NAMES
    )


def test_setup_roles_restores_a_role_someone_edited(db):
    roles_setup()
    role = Role.objects.get(name="Pool manager")
    role.permissions.clear()
    call_command("setup_roles", stdout=StringIO())
    held = {f"{p.content_type.app_label}.{p.codename}" for p in role.permissions.all()}
    assert held == ROLE_PERMISSIONS["Pool manager"]


def test_nobody_adds_changes_or_deletes_audit_entries_not_even_a_superuser(lab):
    entry = audit_record(at=timezone.now(), actor=None, action="test", obj=lab.pend00)
    client = superuser_client()
    urls = _urls(AuditEntry, entry)
    assert client.get(urls["changelist"]).status_code == 200
    assert client.get(urls["add"]).status_code == 403
    assert client.post(urls["change"], {"action": "forged"}).status_code == 403
    assert client.post(urls["delete"], {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.get(pk=entry.pk).action == "test"


def test_the_audit_log_filters_by_action_object_type_actor_and_date(lab):
    roles_setup()
    manager = persona_user(lab, "lab_manager")
    audit_record(at=timezone.now(), actor=manager, action="admin.change", obj=lab.pend00)
    audit_record(at=timezone.now(), actor=None, action="booking.cancel", obj=lab.pool)
    client = client_for(manager)
    url = reverse("admin:booking_auditentry_changelist")
    today = timezone.localdate()
    for query in (
        "action=admin.change",
        "object_type=booking.experiment",
        "actor=lab-manager",
        "at__gte=" + quote_plus(timezone.localtime().replace(hour=0, minute=0).isoformat()),
        f"at__day={today.day}&at__month={today.month}&at__year={today.year}",
    ):
        response = client.get(f"{url}?{query}")
        assert response.status_code == 200, query
        assert response.context["cl"].result_count >= 1, query
    assert client.get(f"{url}?action=admin.change").context["cl"].result_count == 1


def test_a_maintainer_sees_only_their_experiments_and_may_change_only_some_fields(lab):
    roles_setup()
    client = client_for(persona_user(lab, "own_maintainer"))
    listing = client.get(reverse("admin:booking_experiment_changelist"))
    assert [e.slug for e in listing.context["cl"].result_list] == ["dev00"]
    page = client.get(reverse("admin:booking_experiment_change", args=[lab.hidden.pk]))
    form = page.context["adminform"].form
    assert set(form.fields) == {"description", "public", "available", "unavailable_reason"}
    assert "inline_admin_formsets" in page.context and not page.context["inline_admin_formsets"]
    data = form_data(page.content.decode(), "experiment_form")
    data.update(title=["Stolen"], topic_stub=["x"], available=[], unavailable_reason=["gears"])
    response = client.post(reverse("admin:booking_experiment_change", args=[lab.hidden.pk]), data)
    assert response.status_code == 302
    lab.hidden.refresh_from_db()
    assert (lab.hidden.title, lab.hidden.topic_stub) == ("Dev00", "dev00")
    assert (lab.hidden.available, lab.hidden.unavailable_reason) == (False, "gears")


def test_taking_an_experiment_off_line_needs_a_reason(lab):
    roles_setup()
    client = client_for(persona_user(lab, "own_maintainer"))
    url = reverse("admin:booking_experiment_change", args=[lab.hidden.pk])
    data = form_data(client.get(url).content.decode(), "experiment_form")
    data.update(available=[], unavailable_reason=[""])
    response = client.post(url, data)
    assert response.status_code == 200
    assert "students see this reason" in response.content.decode()
    assert Experiment.objects.get(pk=lab.hidden.pk).available


def test_the_admin_index_shows_each_role_only_its_models(lab):
    roles_setup()
    seen = {}
    for persona in ("lab_manager", "experiment_maintainer", "pool_manager", "policy_editor"):
        response = client_for(persona_user(lab, persona)).get(reverse("admin:index"))
        seen[persona] = {
            m["object_name"] for app in response.context["app_list"] for m in app["models"]
        }
    seen["own_maintainer"] = {
        m["object_name"]
        for app in client_for(persona_user(lab, "own_maintainer"))
        .get(reverse("admin:index"))
        .context["app_list"]
        for m in app["models"]
    }
    assert seen["experiment_maintainer"] == {"Experiment", "Relay"}
    assert seen["pool_manager"] == {"Experiment", "Pool"}
    assert seen["policy_editor"] == {"Pool"}
    assert seen["own_maintainer"] == {"Experiment"}
    assert {"Booking", "AuditEntry", "User", "Message", "RelayApiToken"} <= seen["lab_manager"]
