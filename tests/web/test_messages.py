"""Django's messages, each request's storage made when the request first uses it
(config/messages.py)."""

import pytest
from django.contrib.messages.storage.fallback import FallbackStorage
from django.utils.functional import empty

from booking.services import group_access_code_rotate
from tests.conftest import NOW
from web import messages as text

pytestmark = pytest.mark.usefixtures("frozen")


def test_a_message_added_by_one_request_shows_once_on_the_next(outsider_client, lab):
    code = group_access_code_rotate(group=lab.group, now=NOW)
    joined = text.JOINED.format(group=lab.group.title)
    response = outsider_client.get(f"/join/{code}/")
    assert response.status_code == 302
    assert type(response.wsgi_request._messages._wrapped) is FallbackStorage
    assert joined in outsider_client.get(response["Location"]).content.decode()
    assert joined not in outsider_client.get(response["Location"]).content.decode()


def test_a_request_that_uses_no_messages_makes_no_storage(student_client, lab):
    response = student_client.get("/api/v1/bookings/")
    assert response.status_code == 200
    assert response.wsgi_request._messages._wrapped is empty
    assert "messages" not in response.cookies


def test_a_page_that_reads_messages_makes_its_storage(student_client, lab):
    response = student_client.get("/")
    assert response.status_code == 200
    assert type(response.wsgi_request._messages._wrapped) is FallbackStorage
