"""Live operations from admin: out of service and back, staff cancels, disabling users,
access codes, relay tokens, staff messages, the deletion guard, policy edits and the audit
of every change."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group as Role
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from booking import admin as booking_admin
from booking.admin_pages import END_BEFORE_START, REASON_NEEDED
from booking.admin_permissions import DELETE_BOOKED
from booking.models import AuditEntry, Booking, BookingStatus, Experiment, Group, Pool, Stream
from booking.roles import POOL_MANAGER
from booking.services.groups import access_code_hash
from messaging.admin import CHOOSE
from messaging.models import Message, SessionEvent, UserEvent
from relay_control import admin as relay_admin
from relay_control.api_tokens import relay_for_token, token_hash
from relay_control.models import RelayApiToken, Revocation, RevocationDelivery
from sessions_app.models import Session
from tests.admin import form_data, persona_user, refused, staff_user
from tests.conftest import NOW, client_for
from tests.factories import make_booking
from web.models import LoginSession
from workflows import lab_actions
from workflows.lab_actions import (
    CANCELLED_TEXT,
    ENDED_TEXT,
    MOVED_TEXT,
    experiment_out_of_service_action,
)

REASON = "Pendulum arm bent"


@pytest.fixture
def manager(lab):
    return persona_user(lab, "lab_manager")


@pytest.fixture
def manager_client(manager):
    return client_for(manager)


@pytest.fixture
def quiet_relays(settings):
    """No HTTP pushes to the (absent) test relays after commits."""
    settings.RELAY_PUSH_IN_PROCESS = False


def texts(response) -> list[str]:
    """The messages the next page shows (the redirect followed)."""
    assert response.status_code == 302, response.status_code
    page = response.client.get(response["Location"])
    return [str(m) for m in page.context["messages"]]


def field(moment) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%dT%H:%M}"


# --- out of service ---------------------------------------------------------------------------


@pytest.fixture
def busy_pend00(lab, frozen, student_client):
    """pend00 with a running session, future bookings and one beyond the period."""
    lab.student2.email = "alex@example.org"
    lab.student2.save()
    running = make_booking(lab.student, lab.pool, lab.pend00, NOW - timedelta(minutes=5), 30)
    response = student_client.post(f"/api/v1/bookings/{running.pk}/session/")
    assert response.status_code == 201, response.content
    soon = make_booking(lab.student2, lab.pool, lab.pend00, NOW + timedelta(hours=1), 30)
    later = make_booking(lab.student2, lab.pool, lab.pend00, NOW + timedelta(hours=3), 30)
    make_booking(lab.student, lab.pool, lab.pend01, NOW + timedelta(hours=3), 30)
    own = make_booking(lab.maintainer, lab.pool, lab.pend00, NOW + timedelta(hours=5), 30)
    make_booking(lab.student, lab.pool, lab.pend01, NOW + timedelta(hours=5), 30)
    beyond = make_booking(lab.student, lab.pool, lab.pend00, NOW + timedelta(days=2), 30)
    return {"running": running, "soon": soon, "later": later, "own": own, "beyond": beyond}


def test_out_of_service_moves_cancels_and_revokes(
    lab, busy_pend00, manager_client, quiet_relays, django_capture_on_commit_callbacks
):
    b = busy_pend00
    changelist = reverse("admin:booking_experiment_changelist")
    response = manager_client.post(
        changelist, {"action": "out_of_service", "_selected_action": [lab.pend00.pk]}
    )
    assert response.status_code == 302
    page = manager_client.get(response["Location"])
    assert page.status_code == 200
    assert "pend00: 5 current or future booking(s)" in page.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = manager_client.post(
            response["Location"],
            {
                "reason": REASON,
                "start": field(NOW),
                "end": field(NOW + timedelta(days=1)),
                "move": "on",
            },
        )
    assert response.status_code == 302
    assert texts(response) == [
        booking_admin.OUT_OF_SERVICE_DONE.format(
            experiment="pend00", moved=2, cancelled=2, revoked=1
        )
    ]

    lab.pend00.refresh_from_db()
    assert (lab.pend00.available, lab.pend00.unavailable_reason) == (False, REASON)
    shown = client_for(lab.student).get("/api/v1/pools/").json()
    pend00 = next(e for p in shown for e in p["experiments"] if e["slug"] == "pend00")
    assert pend00 == {**pend00, "available": False, "unavailable_reason": REASON}

    state = {k: Booking.objects.get(pk=v.pk) for k, v in b.items()}
    assert state["running"].status == BookingStatus.CANCELLED
    assert state["running"].cancel_reason == f"out of service: {REASON}"
    assert (state["soon"].experiment, state["soon"].status) == (lab.pend01, BookingStatus.BOOKED)
    assert state["later"].status == BookingStatus.CANCELLED
    assert state["own"].experiment == lab.hidden  # a maintainer may use the hidden one
    assert (state["beyond"].experiment, state["beyond"].status) == (lab.pend00, "booked")

    revocation = Revocation.objects.get(booking_id=b["running"].pk)
    assert revocation.reason == f"out of service: {REASON}"
    assert RevocationDelivery.objects.filter(revocation=revocation, relay=lab.relay).exists()
    session = Session.objects.get(booking=b["running"])
    assert session.ended_at == NOW
    assert SessionEvent.objects.filter(session=session, type="session.cancelled").exists()

    sent = Message.objects.filter(target=Message.Target.USER).order_by("pk")
    assert [(m.user, m.level) for m in sent] == [
        (lab.student, "warning"),
        (lab.student2, "warning"),
        (lab.student2, "warning"),
        (lab.maintainer, "warning"),
    ]
    words = {"old": "pend00", "reason": REASON}
    assert sent[0].text.startswith(ENDED_TEXT.split("{")[0])
    assert (
        MOVED_TEXT.format(
            reference=b["soon"].reference,
            when=lab_actions._when(state["soon"]),
            new="pend01",
            **words,
        )
        == sent[1].text
    )
    assert sent[2].text == CANCELLED_TEXT.format(
        reference=b["later"].reference, when=lab_actions._when(state["later"]), **words
    )
    assert UserEvent.objects.filter(user=lab.student2, type="message").count() == 2

    assert sorted(m.to[0] for m in mail.outbox) == [
        "alex@example.org",
        "alex@example.org",
        "sam@example.org",
    ]
    subjects = {m.subject for m in mail.outbox}
    assert f"Booking {b['soon'].reference} moved to pend01" in subjects
    assert f"Booking {b['later'].reference} cancelled: pend00 out of service" in subjects

    entry = AuditEntry.objects.get(action="experiment.out_of_service")
    assert entry.actor.username == "lab-manager"
    assert entry.detail["moved"] == 2 and entry.detail["revoked"] == 1
    assert AuditEntry.objects.filter(action="booking.move").count() == 2


def test_without_moving_every_future_booking_is_cancelled(lab, busy_pend00, manager):
    result = experiment_out_of_service_action(
        experiment=lab.pend00, reason=REASON, start=NOW, end=None, by=manager, now=NOW, move=False
    )
    assert (result.moved, result.cancelled, result.revoked) == (0, 5, 1)
    assert not Booking.objects.filter(experiment=lab.pend00, status="booked").exists()


def test_a_move_refused_by_the_database_falls_back_to_cancelling(
    lab, busy_pend00, manager, monkeypatch
):
    """Another booking took the target in between: the savepoint rolls the move back."""
    monkeypatch.setattr(lab_actions, "_free_target", lambda booking, leaving: lab.pend01)
    result = experiment_out_of_service_action(
        experiment=lab.pend00,
        reason=REASON,
        start=NOW + timedelta(hours=2),
        end=NOW + timedelta(hours=4),
        by=manager,
        now=NOW,
    )
    assert (result.moved, result.cancelled) == (0, 1)
    later = Booking.objects.get(pk=busy_pend00["later"].pk)
    assert (later.experiment, later.status) == (lab.pend00, BookingStatus.CANCELLED)
    assert Booking.objects.filter(experiment=lab.pend01, status="booked").count() == 2


def test_back_in_service_clears_the_reason(lab, manager_client, manager):
    experiment_out_of_service_action(
        experiment=lab.pend01, reason=REASON, start=NOW, end=None, by=manager, now=NOW
    )
    url = reverse("admin:booking_experiment_back_in_service") + f"?ids={lab.pend01.pk}"
    assert manager_client.get(url).status_code == 200
    response = manager_client.post(url, {})
    assert texts(response) == [booking_admin.BACK_IN_SERVICE_DONE.format(experiment="pend01")]
    lab.pend01.refresh_from_db()
    assert (lab.pend01.available, lab.pend01.unavailable_reason) == (True, "")
    response = manager_client.post(url, {})
    assert texts(response) == [booking_admin.ALREADY_IN_SERVICE.format(experiment="pend01")]
    assert AuditEntry.objects.filter(action="experiment.back_in_service").count() == 1


def test_out_of_service_refusals_say_why(lab, manager_client):
    url = reverse("admin:booking_experiment_out_of_service") + f"?ids={lab.pend00.pk}"
    response = manager_client.post(url, {"reason": "", "start": field(timezone.now())})
    assert response.status_code == 200 and REASON_NEEDED in response.content.decode()
    response = manager_client.post(
        url,
        {
            "reason": REASON,
            "start": field(timezone.now()),
            "end": field(timezone.now() - timedelta(hours=1)),
        },
    )
    assert END_BEFORE_START in response.content.decode()
    assert Experiment.objects.get(pk=lab.pend00.pk).available

    pool_manager = client_for(persona_user(lab, "pool_manager"))
    assert pool_manager.post(url, {"reason": REASON, "start": field(NOW)}).status_code == 403
    maintainer = client_for(persona_user(lab, "own_maintainer"))
    assert maintainer.post(url, {"reason": REASON, "start": field(NOW)}).status_code == 404
    assert Experiment.objects.get(pk=lab.pend00.pk).available


def test_a_maintainer_takes_their_own_experiment_out_of_service(lab):
    client = client_for(persona_user(lab, "own_maintainer"))
    page = client.get(reverse("admin:booking_experiment_change", args=[lab.hidden.pk]))
    assert "Take out of service…" in page.content.decode()
    url = reverse("admin:booking_experiment_out_of_service") + f"?ids={lab.hidden.pk}"
    response = client.post(url, {"reason": "new firmware", "start": field(timezone.now())})
    assert response.status_code == 302
    assert Experiment.objects.get(pk=lab.hidden.pk).unavailable_reason == "new firmware"


# --- staff cancel --------------------------------------------------------------------------------


def test_staff_cancel_with_reason_revokes_a_running_session(
    lab, frozen, student_client, manager_client, quiet_relays
):
    booking = make_booking(lab.student, lab.pool, lab.pend00, NOW - timedelta(minutes=1), 20)
    assert student_client.post(f"/api/v1/bookings/{booking.pk}/session/").status_code == 201
    changelist = reverse("admin:booking_booking_changelist")
    response = manager_client.post(
        changelist, {"action": "cancel_with_reason", "_selected_action": [booking.pk]}
    )
    page = manager_client.get(response["Location"])
    assert booking.reference in page.content.decode()
    missing = manager_client.post(response["Location"], {"reason": ""})
    assert REASON_NEEDED in missing.content.decode()
    done = manager_client.post(response["Location"], {"reason": "fire alarm"})
    assert texts(done) == [booking_admin.CANCEL_DONE.format(count=1)]
    booking.refresh_from_db()
    assert (booking.status, booking.cancel_reason) == ("cancelled", "fire alarm")
    assert booking.cancelled_by.username == "lab-manager"
    assert Revocation.objects.filter(booking_id=booking.pk).exists()
    again = manager_client.post(response["Location"], {"reason": "fire alarm"})
    assert texts(again) == [booking_admin.CANCEL_NOTHING.format(reference=booking.reference)]


# --- users and roles ------------------------------------------------------------------------------


def test_role_changes_through_the_user_admin_are_audited(lab, manager_client):
    target = staff_user("newcomer")
    url = reverse("admin:auth_user_change", args=[target.pk])
    data = form_data(manager_client.get(url).content.decode(), "user_form")
    data["groups"] = [str(Role.objects.get(name=POOL_MANAGER).pk)]
    assert manager_client.post(url, data).status_code == 302
    entry = AuditEntry.objects.filter(object_type="auth.user", object_id=str(target.pk)).get()
    assert entry.action == "admin.change" and entry.actor.username == "lab-manager"
    assert entry.before == {"groups": []} and entry.after == {"groups": [POOL_MANAGER]}

    data["groups"] = []
    manager_client.post(url, data)
    entry = AuditEntry.objects.filter(object_id=str(target.pk)).order_by("-pk").first()
    assert entry.before == {"groups": [POOL_MANAGER]} and entry.after == {"groups": []}


def test_a_lab_manager_cannot_make_anyone_superuser(lab, manager_client):
    target = staff_user("newcomer")
    url = reverse("admin:auth_user_change", args=[target.pk])
    data = form_data(manager_client.get(url).content.decode(), "user_form")
    data["is_superuser"] = ["on"]
    manager_client.post(url, data)
    target.refresh_from_db()
    assert not target.is_superuser


def test_disabling_users_cancels_their_bookings_and_sessions(
    lab, frozen, student_client, manager, manager_client, quiet_relays
):
    running = make_booking(lab.student, lab.pool, lab.pend00, NOW - timedelta(minutes=1), 20)
    future = make_booking(lab.student, lab.pool, lab.pend01, NOW + timedelta(hours=2), 20)
    assert student_client.post(f"/api/v1/bookings/{running.pk}/session/").status_code == 201
    response = manager_client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "disable_users", "_selected_action": [lab.student.pk, manager.pk]},
    )
    assert texts(response) == [
        booking_admin.DISABLE_SELF,
        booking_admin.USERS_DISABLED.format(users=1, bookings=2),
    ]
    lab.student.refresh_from_db()
    manager.refresh_from_db()
    assert not lab.student.is_active and manager.is_active
    assert {b.status for b in Booking.objects.filter(pk__in=[running.pk, future.pk])} == {
        "cancelled"
    }
    assert Revocation.objects.filter(booking_id=running.pk).exists()
    assert AuditEntry.objects.filter(action="user.disable", object_id=str(lab.student.pk)).exists()


def test_switching_a_user_off_in_the_form_disables_them_too(lab, frozen, manager_client):
    future = make_booking(lab.student, lab.pool, lab.pend01, NOW + timedelta(hours=2), 20)
    url = reverse("admin:auth_user_change", args=[lab.student.pk])
    data = form_data(manager_client.get(url).content.decode(), "user_form")
    data.pop("is_active")
    assert manager_client.post(url, data).status_code == 302
    assert Booking.objects.get(pk=future.pk).status == "cancelled"


# --- the audit of admin changes -------------------------------------------------------------------


def test_admin_changes_and_inline_changes_are_audited(lab, manager_client):
    url = reverse("admin:booking_experiment_change", args=[lab.pend01.pk])
    data = form_data(manager_client.get(url).content.decode(), "experiment_form")
    data["title"] = ["Pendulum one"]
    video = Stream.objects.get(experiment=lab.pend01, name="video")
    row = next(k for k, v in data.items() if k.endswith("-id") and v == [str(video.pk)])
    data[row.replace("-id", "-scopes")] = ['["read", "write"]']
    assert manager_client.post(url, data).status_code == 302

    change = AuditEntry.objects.get(action="admin.change", object_type="booking.experiment")
    assert (change.before, change.after) == ({"title": "Pend01"}, {"title": "Pendulum one"})
    assert change.actor.username == "lab-manager" and change.at is not None
    inline = AuditEntry.objects.get(action="admin.change", object_type="booking.stream")
    assert inline.before == {"scopes": ["read"]} and inline.after == {"scopes": ["read", "write"]}
    assert inline.detail["parent"] == f"booking.experiment:{lab.pend01.pk}"


def test_deleting_is_audited_and_never_removes_what_bookings_need(lab, manager_client):
    make_booking(lab.student, lab.pool, lab.pend00, timezone.now() + timedelta(hours=1))
    url = reverse("admin:booking_experiment_delete", args=[lab.pend00.pk])
    response = manager_client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert texts(response) == [DELETE_BOOKED.format(object="pend00")]
    assert Experiment.objects.filter(pk=lab.pend00.pk).exists()

    bulk = manager_client.post(
        reverse("admin:booking_experiment_changelist"),
        {"action": "delete_selected", "_selected_action": [lab.pend00.pk]},
    )
    assert "pend00: has current or future bookings" in bulk.content.decode()

    pool_url = reverse("admin:booking_pool_delete", args=[lab.pool.pk])
    assert texts(manager_client.post(pool_url, {"post": "yes"})) == [
        DELETE_BOOKED.format(object="pendulums")
    ]

    gone = manager_client.post(
        reverse("admin:booking_experiment_delete", args=[lab.pend01.pk]), {"post": "yes"}
    )
    assert gone.status_code == 302 and not Experiment.objects.filter(slug="pend01").exists()
    entry = AuditEntry.objects.get(action="admin.delete", object_type="booking.experiment")
    assert entry.before["slug"] == "pend01" and entry.after is None


def test_only_a_lab_manager_deletes_an_experiment(lab):
    client = client_for(persona_user(lab, "experiment_maintainer"))
    url = reverse("admin:booking_experiment_delete", args=[lab.pend01.pk])
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert Experiment.objects.filter(pk=lab.pend01.pk).exists()


# --- pools: membership and policy -----------------------------------------------------------------


def _pool_form(client, pool: Pool) -> tuple[str, dict]:
    url = reverse("admin:booking_pool_change", args=[pool.pk])
    return url, form_data(client.get(url).content.decode(), "pool_form")


def test_a_pool_manager_changes_membership_not_policy(lab):
    client = client_for(persona_user(lab, "pool_manager"))
    url, data = _pool_form(client, lab.pool)
    assert "max_duration" not in data and "windows-TOTAL_FORMS" not in data
    data.update(experiments=[str(lab.pend00.pk)], max_duration=["2h"])
    assert client.post(url, data).status_code == 302
    lab.pool.refresh_from_db()
    assert list(lab.pool.experiments.all()) == [lab.pend00]
    assert lab.pool.max_duration == 1800


def test_a_policy_editor_changes_policy_and_windows_not_membership(lab):
    client = client_for(persona_user(lab, "policy_editor"))
    url, data = _pool_form(client, lab.pool)
    assert "experiments" not in data and data["max_duration"] == ["30m"]
    data.update(
        experiments=[str(lab.pend00.pk)],
        max_duration=["45m"],
        **{
            "windows-TOTAL_FORMS": ["1"],
            "windows-0-kind": ["denied"],
            "windows-0-start_0": ["2026-04-01"],
            "windows-0-start_1": ["00:00:00"],
            "windows-0-end_0": ["2026-04-02"],
            "windows-0-end_1": ["00:00:00"],
        },
    )
    assert client.post(url, data).status_code == 302
    lab.pool.refresh_from_db()
    assert lab.pool.max_duration == 2700
    assert lab.pool.windows.get().kind == "denied"
    assert lab.pool.experiments.count() == 3


def test_a_policy_change_keeps_existing_bookings_and_rules_new_ones(lab, frozen, student_client):
    kept = make_booking(lab.student, lab.pool, lab.pend00, NOW + timedelta(hours=1), 30)
    client = client_for(persona_user(lab, "policy_editor"))
    url, data = _pool_form(client, lab.pool)
    data["max_duration"] = ["10m"]
    assert client.post(url, data).status_code == 302

    kept.refresh_from_db()
    assert (kept.status, kept.end - kept.start) == ("booked", timedelta(minutes=30))

    def book(minutes: int):
        start = NOW + timedelta(hours=3)
        return student_client.post(
            "/api/v1/bookings/",
            {
                "pool": "pendulums",
                "start": start.isoformat(),
                "end": (start + timedelta(minutes=minutes)).isoformat(),
            },
            content_type="application/json",
        )

    assert book(30).json()["code"] == "too_long"
    assert book(10).status_code == 201


# --- access codes ---------------------------------------------------------------------------------


def test_an_access_code_is_shown_once_and_stored_only_as_a_hash(lab, manager_client, settings):
    url = reverse("admin:booking_group_access_code", args=[lab.group.pk])
    assert manager_client.get(url).status_code == 200
    response = manager_client.post(
        url, {"expires_at": field(timezone.now() + timedelta(days=7)), "max_uses": "30"}
    )
    assert response.status_code == 302
    shown = manager_client.get(response["Location"]).content.decode()
    lab.group.refresh_from_db()
    code = next(
        word for word in shown.split() if access_code_hash(word) == lab.group.access_code_hash
    )
    assert f"{settings.PLATFORM_URL}/join/{code}" in shown
    assert code not in manager_client.get(response["Location"]).content.decode()
    assert lab.group.access_code_hash == access_code_hash(code)
    assert (lab.group.access_code_max_uses, lab.group.access_code_uses) == (30, 0)

    stored = [str(v) for v in Group.objects.values_list(flat=True)]
    stored += [e.detail for e in AuditEntry.objects.all()]
    stored += [s.session_data for s in LoginSession.objects.all()]
    assert not any(code in str(value) for value in stored)

    listing = manager_client.get(reverse("admin:booking_group_changelist")).content.decode()
    assert "0 / 30" in listing and code not in listing
    joined = client_for(lab.outsider).post(
        "/api/v1/groups/join/", {"code": code}, content_type="application/json"
    )
    assert joined.status_code == 200


# --- relay tokens ---------------------------------------------------------------------------------


def test_a_relay_token_is_shown_once_and_can_be_revoked(lab, manager_client):
    url = reverse("admin:booking_relay_api_token", args=[lab.relay.pk])
    response = manager_client.post(url, {"name": "relay host 1"})
    page = manager_client.get(response["Location"]).content.decode()
    row = RelayApiToken.objects.get(relay=lab.relay)
    token = next(w for w in page.split() if w.startswith("r_") and token_hash(w) == row.token_hash)
    assert relay_for_token(token, now=timezone.now()) is not None
    again = manager_client.get(response["Location"]).content.decode()
    assert token not in again and row.token_hash not in again and row.prefix in again

    tokens = reverse("admin:relay_control_relayapitoken_changelist")
    listing = manager_client.get(tokens).content.decode()
    assert row.token_hash not in listing and "Last used" in listing
    response = manager_client.post(tokens, {"action": "revoke", "_selected_action": [row.pk]})
    assert texts(response) == [relay_admin.TOKENS_REVOKED.format(count=1)]
    assert relay_for_token(token, now=timezone.now()) is None
    assert AuditEntry.objects.filter(action="relay_token.revoke").exists()


def test_deliveries_are_listed_by_state_and_relay(lab, manager_client):
    from relay_control.services import revocation_publish

    booking = make_booking(lab.student, lab.pool, lab.pend00, timezone.now())
    revocation_publish(booking=booking, exp=booking.end, reason="cancelled", now=timezone.now())
    url = reverse("admin:relay_control_revocationdelivery_changelist")
    pending = manager_client.get(f"{url}?state__exact=pending&relay__id__exact={lab.relay.pk}")
    assert pending.context["cl"].result_count == 1
    assert manager_client.get(f"{url}?state__exact=delivered").context["cl"].result_count == 0
    relays = manager_client.get(reverse("admin:booking_relay_changelist")).content.decode()
    assert "state__exact=pending" in relays


# --- staff messages -------------------------------------------------------------------------------


def test_staff_send_a_message_to_one_user_and_it_stays_read_only(lab, manager_client):
    url = reverse("admin:messaging_message_add")
    missing = manager_client.post(url, {"target": "user", "level": "info", "text": "Hi"})
    assert CHOOSE.format(what="user") in missing.content.decode()
    assert not Message.objects.exists()

    response = manager_client.post(
        url,
        {
            "target": "user",
            "user": lab.student.pk,
            "pool": lab.pool.pk,
            "level": "warning",
            "text": "The lab closes at 5.",
        },
    )
    assert response.status_code == 302
    message = Message.objects.get()
    assert (message.user, message.pool, message.sender.username) == (
        lab.student,
        None,
        "lab-manager",
    )
    assert message.recipients == 1
    assert UserEvent.objects.filter(user=lab.student, type="message").exists()
    change = reverse("admin:messaging_message_change", args=[message.pk])
    assert manager_client.get(change).status_code == 200
    assert manager_client.post(change, {"text": "edited"}).status_code == 403
    assert refused(
        manager_client.post(
            reverse("admin:messaging_message_delete", args=[message.pk]), {"post": "yes"}
        )
    )
    assert Message.objects.get().text == "The lab closes at 5."
