"""The 400 and 503 answers every API operation can give, added to the OpenAPI document."""

ERROR = {"$ref": "#/components/schemas/ErrorOut"}
RETRY_AFTER = {
    "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before a retry."}
}
BUSY = (
    "`server_busy`: the database is busy or unreachable for a moment; nothing was changed. "
    "Retry after the Retry-After seconds."
)
BAD_REQUEST = (
    "`invalid`: the request could not be read before the operation saw it (a Host header "
    "this server does not answer to, for one); nothing was changed."
)
RELAY = "`relay_unavailable`: a relay of the experiment has no usable secret configured."
# Operations that sign stream tokens, so can also meet a misconfigured relay.
SIGNING = {
    "bookings_session_create",
    "session_retrieve",
    "session_extend_create",
    "session_subset_create",
}


def add_unavailable(result: dict, generator, request, public) -> dict:
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            signs = operation.get("operationId") in SIGNING
            description = BUSY + (f" {RELAY}" if signs else "")
            refused = operation["responses"].setdefault(
                "400", {"description": "", "content": {"application/json": {"schema": ERROR}}}
            )
            refused["description"] = " ".join(filter(None, [refused["description"], BAD_REQUEST]))
            operation["responses"].setdefault(
                "503",
                {
                    "description": description,
                    "headers": RETRY_AFTER,
                    "content": {"application/json": {"schema": ERROR}},
                },
            )
    return result
