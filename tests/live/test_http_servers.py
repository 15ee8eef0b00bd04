"""The web servers that serve HTTP for real: production's uvicorn command (docker-compose.yml),
daphne (the embedded default) and gunicorn (the WSGI entry point), on the test database."""

import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from booking.models import Booking
from tests.support.servers import ROOT, LiveClient, WebProcess, _port_open, free_port, live_env

pytestmark = [
    pytest.mark.live,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("live_passwords"),
]


def book_and_cancel(base_url: str) -> None:
    client = LiveClient(base_url)
    client.login("student", "pw-student")  # a form POST with its CSRF token
    start = timezone.now() + timedelta(hours=1)
    status, booking = client.request(
        "POST",
        "/api/v1/bookings/",
        {
            "pool": "pendulums",
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=10)).isoformat(),
        },
    )
    assert status == 201, booking
    status, body = client.request("POST", f"/api/v1/bookings/{booking['id']}/cancel/")
    assert status == 200 and body["status"] == "cancelled"
    assert Booking.objects.get(pk=booking["id"]).status == "cancelled"
    # Bad input through the server: a clear 4xx with a code, nothing written.
    status, body = client.request("POST", "/api/v1/bookings/", {"pool": "nope"})
    assert status == 400 and body["code"], body
    assert Booking.objects.count() == 1
    status, css = client.request("GET", "/static/admin/css/base.css")
    assert status == 200 and "body" in css


@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
def test_the_asgi_servers_serve_booking_and_cancel(lab, server):
    web = WebProcess(live_env(), server=server).start()
    try:
        book_and_cancel(web.url)
    finally:
        web.stop()


def test_gunicorn_serves_the_wsgi_application(lab, tmp_path):
    port = free_port()
    log = (tmp_path / "gunicorn.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
        ],
        cwd=ROOT,
        env=live_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not _port_open(port):
            assert server.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.05)  # polling for readiness, bounded by the deadline
        book_and_cancel(f"http://127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait(timeout=20)
