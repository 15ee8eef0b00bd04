"""The revocation feed relays poll, and relay API tokens."""

import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from booking.models import AuditEntry, Stream
from relay_control.api_tokens import relay_token_create, relay_token_revoke, token_hash
from relay_control.models import RelayApiToken, Revocation
from relay_control.services import revocation_publish, revocation_purge
from tests.factories import make_booking, make_experiment, make_relay

FEED = "/api/v1/relay/revocations/"


@pytest.fixture
def relays(lab):
    """relay-a carries pend00 and pend01; relay-b carries spin00 only."""
    relay_b = make_relay("relay-b")
    spin = lab.other_pool.experiments.get()
    Stream.objects.filter(experiment=spin).update(relay=relay_b)
    _, token_a = relay_token_create(relay=lab.relay, now=timezone.now())
    _, token_b = relay_token_create(relay=relay_b, now=timezone.now())
    return {"a": (lab.relay, token_a), "b": (relay_b, token_b), "spin": spin}


def revoke(lab, experiment, *, minutes_left=30, reason="cancelled"):
    now = timezone.now()
    booking = make_booking(
        lab.student, lab.pool, experiment, now - timedelta(minutes=1), minutes=minutes_left
    )
    return revocation_publish(booking=booking, exp=booking.end, reason=reason, now=now)


def get(token, **params):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    etag = params.pop("etag", None)
    if etag:
        headers["HTTP_IF_NONE_MATCH"] = etag
    return Client().get(FEED, params, **headers)


def test_a_snapshot_then_increments(lab, relays):
    _, token = relays["a"]
    first = revoke(lab, lab.pend00)
    response = get(token)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["snapshot"] is True
    assert body["cursor"] == first.seq
    assert response["ETag"] == f'"{first.seq}"'
    (entry,) = body["entries"]
    assert entry == {
        "seq": first.seq,
        "booking_id": str(first.booking_id),
        "exp": int(first.exp.timestamp()),
        "revoked_at": int(first.revoked_at.timestamp()),
        "reason": "cancelled",
    }
    second = revoke(lab, lab.pend01, reason="cancelled by staff")
    body = get(token, since=body["cursor"]).json()
    assert body["snapshot"] is False
    assert [e["seq"] for e in body["entries"]] == [second.seq]
    assert body["cursor"] == second.seq


def test_an_unchanged_feed_is_304_with_an_empty_body(lab, relays):
    _, token = relays["a"]
    revoke(lab, lab.pend00)
    etag = get(token)["ETag"]
    response = get(token, since=1, etag=etag)
    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag
    revoke(lab, lab.pend01)
    assert get(token, since=1, etag=etag).status_code == 200


def test_an_unchanged_feed_costs_one_query(lab, relays, django_assert_num_queries):
    _, token = relays["a"]
    empty = get(token)
    assert empty.json() == {"cursor": 0, "snapshot": True, "entries": []}
    revoke(lab, lab.pend00)
    etag = get(token)["ETag"]  # the token's last use is recorded here, not again for a while
    with django_assert_num_queries(1):
        assert get(token, since=1, etag=etag).status_code == 304


def test_a_relay_sees_only_its_own_bookings(lab, relays):
    _, token_a = relays["a"]
    _, token_b = relays["b"]
    mine = revoke(lab, lab.pend00)
    theirs = revoke(lab, relays["spin"])
    a = get(token_a).json()
    b = get(token_b).json()
    assert [e["booking_id"] for e in a["entries"]] == [str(mine.booking_id)]
    assert [e["booking_id"] for e in b["entries"]] == [str(theirs.booking_id)]
    assert a["cursor"] == b["cursor"] == theirs.seq  # one global sequence: cursors jump


def test_a_booking_on_two_relays_is_in_both_feeds(lab, relays):
    relay_b, token_b = relays["b"]
    Stream.objects.filter(experiment=lab.pend00, name="video").update(relay=relay_b)
    revocation = revoke(lab, lab.pend00)
    _, token_a = relays["a"]
    for token in (token_a, token_b):
        assert [e["seq"] for e in get(token).json()["entries"]] == [revocation.seq]


def test_purged_entries_leave_and_old_cursors_get_a_snapshot(lab, relays):
    _, token = relays["a"]
    old = revoke(lab, lab.pend00, minutes_left=2)
    fresh = revoke(lab, lab.pend01, minutes_left=60)
    later = timezone.now() + timedelta(minutes=2) + timedelta(seconds=301)
    assert revocation_purge(now=later) == 1
    body = get(token, since=old.seq - 1).json()
    assert body["snapshot"] is True
    assert [e["seq"] for e in body["entries"]] == [fresh.seq]
    body = get(token, since=old.seq).json()
    assert body["snapshot"] is False


@pytest.mark.parametrize("since", ["-1", "abc", "1.5", "99999999999999999999", "5", " 1", ""])
def test_bad_since_values_are_400(lab, relays, since):
    _, token = relays["a"]
    revoke(lab, lab.pend00)
    response = get(token, since=since)
    assert response.status_code == 400, since
    assert response.json()["code"] == "invalid"


@pytest.mark.parametrize(
    "credential",
    [None, "r_" + "x" * 43, "garbage", "s_" + "x" * 43],
)
def test_bad_credentials_are_401(lab, relays, credential):
    response = get(credential)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_a_revoked_token_is_401_and_others_keep_working(lab, relays):
    relay, token = relays["a"]
    row, second = relay_token_create(relay=relay, now=timezone.now(), name="spare")
    relay_token_revoke(
        row=RelayApiToken.objects.get(token_hash=token_hash(token)), now=timezone.now()
    )
    assert get(token).status_code == 401
    assert get(second).status_code == 200
    assert row.token_hash != second and second not in str(list(RelayApiToken.objects.values()))


def test_a_session_code_is_not_a_relay_token(lab, relays, student_client, frozen):
    from tests.booking.test_api_bookings import book
    from tests.conftest import NOW

    booking = book(student_client, start=0, end=10).json()
    frozen.move_to(NOW + timedelta(minutes=1))
    code = student_client.post(f"/api/v1/bookings/{booking['id']}/session/").json()["session"]
    assert get(code).status_code == 401


def test_last_use_is_recorded(lab, relays):
    _, token = relays["a"]
    get(token)
    assert RelayApiToken.objects.get(token_hash=token_hash(token)).last_used_at is not None


def test_the_command_prints_only_a_new_token(lab):
    out = StringIO()
    call_command("relay_token", "relay-a", stdout=out)
    token = out.getvalue().strip()
    assert token.startswith("r_") and "\n" not in token
    assert RelayApiToken.objects.filter(token_hash=token_hash(token)).exists()
    assert not RelayApiToken.objects.filter(token_hash=token).exists()
    assert get(token).status_code == 200
    assert AuditEntry.objects.filter(action="relay_token.create").exists()


def test_the_command_refuses_an_unknown_relay(lab):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no relay"):
        call_command("relay_token", "nope", stdout=StringIO())


def test_seq_is_taken_from_the_counter_in_commit_order(lab):
    seqs = [revoke(lab, make_experiment(f"x{i}", lab.relay)).seq for i in range(5)]
    assert seqs == list(range(seqs[0], seqs[0] + 5))
    assert Revocation.objects.filter(booking_id=uuid.uuid4()).count() == 0


def test_the_feed_answers_as_the_openapi_document_says(lab, relays, client):
    import json as _json

    from tests.booking.test_schema import check

    schema = _json.loads(
        client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content
    )
    _, token = relays["a"]
    revoke(lab, lab.pend00)
    path = "/api/v1/relay/revocations/"
    check(schema, path, "get", get(token))
    check(schema, path, "get", get(token, since="x"))
    check(schema, path, "get", get(None))


def test_the_entries_text_says_what_the_rows_say_whatever_the_reason_holds(lab, relays):
    """On PostgreSQL the database writes the entries' JSON (relay_control/feed.py); it must
    parse to exactly what the rows hold, as the Python encoding does (the path on SQLite):
    quotes, backslashes, control characters and other scripts in a reason, a token's jti."""
    import json

    from relay_control.feed import feed_entries, feed_entries_json

    relay, token = relays["a"]
    reasons = ['said "stop"', "back\\slash", "line\nbreak\ttab\x01bell", "réparé ✓ 修理 🔧"]
    now = timezone.now()
    made = []
    for n, (reason, jti) in enumerate([*((r, "") for r in reasons), ("one token", "t-1")]):
        start = now - timedelta(minutes=1) + timedelta(hours=n)
        booking = make_booking(lab.student, lab.pool, lab.pend00, start, minutes=30)
        made.append(
            revocation_publish(booking=booking, exp=booking.end, reason=reason, now=now, jti=jti)
        )
    upto = made[-1].seq
    for since in (None, made[1].seq):
        text = feed_entries_json(relay_id=relay.pk, since=since, upto=upto)
        python = feed_entries(relay_id=relay.pk, since=since, upto=upto)
        assert json.loads(text) == python
    expected = [
        {
            "seq": r.seq,
            "booking_id": str(r.booking_id),
            "exp": int(r.exp.timestamp()),
            "revoked_at": int(r.revoked_at.timestamp()),
            "reason": r.reason,
            **({"jti": r.jti} if r.jti else {}),
        }
        for r in Revocation.objects.filter(pk__in=[m.pk for m in made]).order_by("seq")
    ]
    assert [e["reason"] for e in expected] == [*reasons, "one token"]
    body = get(token).json()
    assert body["entries"] == expected
    assert get(token, since=made[1].seq).json()["entries"] == expected[2:]
    assert list(body["entries"][-1]) == ["seq", "booking_id", "exp", "revoked_at", "reason", "jti"]
