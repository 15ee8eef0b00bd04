"""No double booking on PostgreSQL, enforced by the database; the shared throttle cache table.

SQLite has no exclusion constraints: there the check and the insert run in one IMMEDIATE
transaction (booking.services.bookings).
"""

from django.core.management import call_command
from django.db import migrations

EXCLUDE = """
CREATE EXTENSION IF NOT EXISTS btree_gist;
ALTER TABLE booking_booking ADD CONSTRAINT booking_no_overlap
    EXCLUDE USING gist (experiment_id WITH =, tstzrange(start, "end", '[)') WITH &&)
    WHERE (status IN ('booked', 'started'));
"""
DROP = "ALTER TABLE booking_booking DROP CONSTRAINT IF EXISTS booking_no_overlap;"


class PostgresOnly(migrations.RunSQL):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("booking", "0001_initial")]

    operations = [
        PostgresOnly(EXCLUDE, DROP),
        migrations.RunPython(create_cache_table, migrations.RunPython.noop),
    ]
