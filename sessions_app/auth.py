"""Bearer authentication with a session code (for experiment UIs, which hold no cookie)."""

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from sessions_app.services import session_for_code


class SessionCodeAuthentication(BaseAuthentication):
    def authenticate(self, request: Request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != b"bearer" or len(header) != 2:
            return None
        try:
            code = header[1].decode("ascii")
        except UnicodeError:
            raise AuthenticationFailed() from None
        session = session_for_code(code)
        if session is None:
            raise AuthenticationFailed()
        return (session.booking.user, session)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="session"'
