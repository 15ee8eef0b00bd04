"""The revocation feed a relay polls: its own entries, in seq order.

A snapshot can hold tens of thousands of entries, so the database computes the Unix times
and the booking ids' text: converting a timestamptz and a uuid per row in Python cost
three times the whole query (docs/benchmarks.md). On PostgreSQL the database writes the
entries' JSON text too: making a row and a dict per entry in Python, then encoding them,
cost more than the query itself.
"""

import json
from dataclasses import dataclass

from django.db import connection
from django.db.models import BigIntegerField, CharField, Func, Subquery, Value
from django.db.models.functions import Cast

from relay_control.models import Revocation, RevocationCounter, RevocationDelivery


class UnixTime(Func):
    """Whole seconds since the epoch (rounded down) of a datetime column."""

    output_field = BigIntegerField()
    template = "FLOOR(EXTRACT(EPOCH FROM %(expressions)s))::bigint"

    def as_sqlite(self, compiler, connection, **extra):
        # Django stores an aware datetime as UTC text there; the format goes as a parameter.
        seconds = Func(Value("%s"), *self.get_source_expressions(), function="strftime")
        return Cast(seconds, BigIntegerField()).as_sql(compiler, connection)


class UuidText(Func):
    """A uuid column as its canonical text (lower case, with dashes)."""

    output_field = CharField()
    template = "%(expressions)s::text"

    def as_sqlite(self, compiler, connection, **extra):
        # 32 hexadecimal digits there.
        dashed = "||'-'||".join(
            f"substr(%(expressions)s, {start}, {length})"
            for start, length in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
        )
        return self.as_sql(compiler, connection, template=f"lower({dashed})")


@dataclass(frozen=True)
class Cursor:
    value: int
    purged_through: int


def feed_cursor() -> Cursor:
    row = RevocationCounter.objects.filter(pk=1).values_list("value", "purged_through").first()
    return Cursor(*row) if row else Cursor(0, 0)


# The cursor as expressions, for reading it in the statement that checks the relay's token.
CURSOR_EXPRESSIONS = {
    f"feed_{field}": Subquery(RevocationCounter.objects.filter(pk=1).values(field)[:1])
    for field in ("value", "purged_through")
}


def cursor_of(values: tuple) -> Cursor:
    """The Cursor from the values of CURSOR_EXPRESSIONS (none yet: 0 and 0)."""
    value, purged_through = values
    return Cursor(value or 0, purged_through or 0)


def feed_entries(*, relay_id: int, since: int | None, upto: int) -> list[dict]:
    """Entries for the relay with since < seq <= upto (every one when since is None)."""
    rows = RevocationDelivery.objects.filter(relay_id=relay_id, revocation__seq__lte=upto)
    if since is not None:
        rows = rows.filter(revocation__seq__gt=since)
    entries = []
    for seq, booking_id, jti, exp, revoked_at, reason in rows.order_by(
        "revocation__seq"
    ).values_list(
        "revocation__seq",
        UuidText("revocation__booking_id"),
        "revocation__jti",
        UnixTime("revocation__exp"),
        UnixTime("revocation__revoked_at"),
        "revocation__reason",
    ):
        entry = {
            "seq": seq,
            "booking_id": booking_id,
            "exp": exp,
            "revoked_at": revoked_at,
            "reason": reason,
        }
        if jti:
            entry["jti"] = jti
        entries.append(entry)
    return entries


# The entries as compact JSON, written by PostgreSQL: the same members in the same order as
# feed_entries() (jti only for a single token), strings through to_json (quotes, backslashes
# and control characters escaped; other characters as UTF-8). Parameters: relay, upto[, since].
ENTRIES_JSON_SQL = """
SELECT '[' || coalesce(string_agg(
           '{{"seq":' || r.seq
           || ',"booking_id":"' || r.booking_id::text
           || '","exp":' || FLOOR(EXTRACT(EPOCH FROM r.exp))::bigint
           || ',"revoked_at":' || FLOOR(EXTRACT(EPOCH FROM r.revoked_at))::bigint
           || ',"reason":' || to_json(r.reason)::text
           || CASE WHEN r.jti = '' THEN '' ELSE ',"jti":' || to_json(r.jti)::text END
           || '}}', ',' ORDER BY r.seq), '') || ']'
FROM {deliveries} d JOIN {revocations} r ON r.id = d.revocation_id
WHERE d.relay_id = %s AND r.seq <= %s{since}
"""


def feed_entries_json(*, relay_id: int, since: int | None, upto: int) -> str:
    """feed_entries() as a JSON array's text (compact)."""
    if connection.vendor != "postgresql":
        entries = feed_entries(relay_id=relay_id, since=since, upto=upto)
        return json.dumps(entries, separators=(",", ":"))
    sql = ENTRIES_JSON_SQL.format(
        deliveries=RevocationDelivery._meta.db_table,
        revocations=Revocation._meta.db_table,
        since="" if since is None else " AND r.seq > %s",
    )
    params = [relay_id, upto] if since is None else [relay_id, upto, since]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]
