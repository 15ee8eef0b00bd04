"""The revocation feed is a plain view (relays poll it every few seconds); describe it in
the OpenAPI document all the same."""

ENTRY = {
    "type": "object",
    "required": ["seq", "booking_id", "exp", "revoked_at", "reason"],
    "properties": {
        "seq": {"type": "integer"},
        "booking_id": {"type": "string"},
        "jti": {"type": "string"},
        "exp": {"type": "integer", "description": "Unix seconds"},
        "revoked_at": {"type": "integer", "description": "Unix seconds"},
        "reason": {"type": "string"},
    },
}
ERROR = {"$ref": "#/components/schemas/ErrorOut"}


def add_feed(result: dict, generator, request, public) -> dict:
    result.setdefault("components", {}).setdefault("securitySchemes", {})["relayToken"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "A relay API token (python manage.py relay_token RELAY).",
    }
    result["paths"]["/api/v1/relay/revocations/"] = {
        "get": {
            "operationId": "relay_revocations",
            "tags": ["relay"],
            "summary": "The deny list for the calling relay's bookings",
            "security": [{"relayToken": []}],
            "parameters": [
                {
                    "in": "query",
                    "name": "since",
                    "schema": {"type": "integer", "minimum": 0},
                    "description": "The cursor of the last answer; absent: a full snapshot.",
                },
                {"in": "header", "name": "If-None-Match", "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {
                    "description": "Entries after `since` (or all, with snapshot true).",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["cursor", "snapshot", "entries"],
                                "properties": {
                                    "cursor": {"type": "integer"},
                                    "snapshot": {"type": "boolean"},
                                    "entries": {"type": "array", "items": ENTRY},
                                },
                            }
                        }
                    },
                },
                "304": {"description": "Nothing new since the ETag sent."},
                "400": {
                    "description": "Bad since.",
                    "content": {"application/json": {"schema": ERROR}},
                },
                "401": {
                    "description": "Bad token.",
                    "content": {"application/json": {"schema": ERROR}},
                },
            },
        }
    }
    return result
