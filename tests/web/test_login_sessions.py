"""Login sessions read with their user in one query, with Django's checks unchanged."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.conftest import client_for
from web.models import LoginSession

BOOKINGS = "/api/v1/bookings/"


def _user_reads(queries: list[dict]) -> list[str]:
    return [q["sql"] for q in queries if "auth_user" in q["sql"]]


def test_an_api_request_reads_session_and_user_in_one_statement(lab):
    client = client_for(lab.student)
    with CaptureQueriesContext(connection) as captured:
        assert client.get(BOOKINGS).status_code == 200
    reads = _user_reads(captured.captured_queries)
    assert len(reads) == 1
    assert "web_loginsession" in reads[0]
    assert not any("django_session" in q["sql"] for q in captured.captured_queries)


def test_the_user_read_with_the_session_has_the_orm_types(lab):
    client = client_for(lab.student)
    request = client.get(BOOKINGS).wsgi_request
    user = request.user._wrapped
    fresh = User.objects.get(pk=lab.student.pk)
    assert user.pk == fresh.pk and user.username == fresh.username
    assert user.is_active is True and user.is_staff is False
    assert isinstance(user.date_joined, datetime) and user.date_joined == fresh.date_joined
    assert user.date_joined.tzinfo is not None


def test_the_session_row_names_its_user(lab):
    client = client_for(lab.student)
    row = LoginSession.objects.get(session_key=client.session.session_key)
    assert row.user_id == lab.student.pk
    assert row.get_decoded()[SESSION_KEY] == str(lab.student.pk)


def test_a_password_login_keeps_working(lab):
    lab.student.set_password("a long enough pass phrase")
    lab.student.save()
    client = Client()
    assert client.login(username="student", password="a long enough pass phrase")
    assert client.get(BOOKINGS).status_code == 200
    assert Client().get(BOOKINGS).status_code in (401, 403)


@pytest.mark.parametrize(
    "change",
    ["deactivate", "new password", "delete", "logout", "expire"],
)
def test_a_session_stops_working(lab, change):
    client = client_for(lab.student)
    assert client.get(BOOKINGS).status_code == 200
    key = client.session.session_key
    if change == "deactivate":
        User.objects.filter(pk=lab.student.pk).update(is_active=False)
    elif change == "new password":
        lab.student.set_password("another long pass phrase")
        lab.student.save()
    elif change == "delete":
        User.objects.get(pk=lab.student.pk).delete()
        assert not LoginSession.objects.filter(session_key=key).exists()
    elif change == "logout":
        client.post("/accounts/logout/")
        assert not LoginSession.objects.filter(session_key=key).exists()
        client.cookies["sessionid"] = key  # the old cookie, replayed
    else:
        past = datetime(2000, 1, 1, tzinfo=UTC)
        LoginSession.objects.filter(session_key=key).update(expire_date=past)
    assert client.get(BOOKINGS).status_code in (401, 403)


def test_a_session_without_a_user_is_anonymous(db):
    store = LoginSession.get_session_store_class()()
    store["note"] = "no login"
    store.create()
    assert LoginSession.objects.get(session_key=store.session_key).user_id is None
    client = Client()
    client.cookies["sessionid"] = store.session_key
    assert client.get(BOOKINGS).status_code in (401, 403)
    loaded = LoginSession.get_session_store_class()(store.session_key)
    assert loaded["note"] == "no login" and loaded.user_row is None


def test_the_sweep_deletes_expired_logins_only(lab):
    from django.utils import timezone

    from web.login_sessions import login_sessions_purge

    keep = client_for(lab.student).session.session_key
    gone = client_for(lab.student2).session.session_key
    past = timezone.now() - timedelta(seconds=1)
    LoginSession.objects.filter(session_key=gone).update(expire_date=past)
    assert login_sessions_purge(now=timezone.now()) == 1
    assert set(LoginSession.objects.values_list("session_key", flat=True)) == {keep}


def test_a_session_text_is_decoded_once_and_each_load_gets_its_own_data(db, monkeypatch):
    from django.core import signing

    from web import login_sessions

    Store = LoginSession.get_session_store_class()  # noqa: N806 - a class
    store = Store()
    store.update({"note": "seen", "count": 1})
    text = store.encode(dict(store.items()))
    monkeypatch.setattr(login_sessions, "_DECODED", {})
    calls = []
    real = signing.loads
    monkeypatch.setattr(signing, "loads", lambda *a, **k: calls.append(1) or real(*a, **k))

    loads = [Store().decode(text) for _ in range(3)]
    assert len(calls) == 1  # checked and parsed once
    loads[0]["note"] = loads[1]["note"] = "changed by a request"
    third = Store().decode(text)
    assert third == {"note": "seen", "count": 1}  # not what the requests did to their copies
    assert loads[2] == third and loads[2] is not third

    tampered = text[:-1] + ("A" if text[-1] != "A" else "B")
    assert Store().decode(tampered) == {}  # its signature checked, as by Django
    assert len(calls) == 2


def test_session_data_holding_more_than_plain_values_is_decoded_each_time(db, monkeypatch):
    from web import login_sessions

    Store = LoginSession.get_session_store_class()  # noqa: N806 - a class
    text = Store().encode({"items": ["a"]})
    monkeypatch.setattr(login_sessions, "_DECODED", {})
    first = Store().decode(text)
    first["items"].append("b")
    assert Store().decode(text) == {"items": ["a"]}
    assert login_sessions._DECODED == {}


def test_the_decoded_texts_are_bounded(db, monkeypatch):
    from web import login_sessions

    Store = LoginSession.get_session_store_class()  # noqa: N806 - a class
    monkeypatch.setattr(login_sessions, "_DECODED", {})
    monkeypatch.setattr(login_sessions, "DECODED_SIZE", 3)
    texts = [Store().encode({"n": n}) for n in range(7)]
    for n, text in enumerate(texts):
        assert Store().decode(text) == {"n": n}
        assert len(login_sessions._DECODED) <= 3
