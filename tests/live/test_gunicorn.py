"""Production's HTTP server: gunicorn's sync workers serve the same application (WSGI)."""

import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from booking.models import Booking
from tests.support.servers import ROOT, LiveClient, _port_open, free_port, live_env

pytestmark = [
    pytest.mark.live,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("live_passwords"),
]


def test_gunicorn_serves_booking_and_cancel(lab, tmp_path):
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
        client = LiveClient(f"http://127.0.0.1:{port}")
        client.login("student", "pw-student")
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
        assert client.request("GET", "/static/admin/css/base.css")[0] == 200
    finally:
        server.terminate()
        server.wait(timeout=20)
