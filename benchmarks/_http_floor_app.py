"""A WSGI application that does nothing but answer like a booking POST (201, a small JSON
body): what gunicorn and the load client cost per request before Django does anything
(booking_contention.py --http-floor)."""

BODY = b'{"id": "00000000-0000-0000-0000-000000000000", "reference": "ABC234", "status": "booked"}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ: dict, start_response) -> list[bytes]:  # noqa: ANN001 - WSGI's signature
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("201 Created", HEADERS)
    return [BODY]
