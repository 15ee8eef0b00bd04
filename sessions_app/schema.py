"""Tell the OpenAPI document how the session-code bearer scheme works."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class SessionCodeScheme(OpenApiAuthenticationExtension):
    target_class = "sessions_app.auth.SessionCodeAuthentication"
    name = "sessionCode"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The session code returned when a booking's session starts.",
        }
