"""PostgreSQL tells the web processes when a login session or a user changes (web.login_cache).

A row trigger on UPDATE and DELETE of either table sends the user's id on the channel; a
statement trigger on TRUNCATE sends "*" (everyone). Nothing on SQLite, where no process
remembers sessions.
"""

from django.conf import settings
from django.db import migrations

CHANNEL = "web_login_changed"  # web.login_cache.CHANNEL, as it was when this was written

FUNCTION = f"""
CREATE OR REPLACE FUNCTION web_login_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('{CHANNEL}', '*');
    ELSIF TG_ARGV[0] = 'session' THEN
        IF OLD.user_id IS NOT NULL THEN
            PERFORM pg_notify('{CHANNEL}', OLD.user_id::text);
        END IF;
        IF TG_OP = 'UPDATE' AND NEW.user_id IS DISTINCT FROM OLD.user_id
                AND NEW.user_id IS NOT NULL THEN
            PERFORM pg_notify('{CHANNEL}', NEW.user_id::text);
        END IF;
    ELSE
        PERFORM pg_notify('{CHANNEL}', OLD.id::text);
    END IF;
    RETURN NULL;
END
$$
"""


def tables(apps) -> dict[str, str]:
    user = apps.get_model(settings.AUTH_USER_MODEL)._meta.db_table
    session = apps.get_model("web", "LoginSession")._meta.db_table
    return {"session": session, "user": user}


def create(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    schema_editor.execute(FUNCTION)
    for kind, table in tables(apps).items():
        schema_editor.execute(
            f"CREATE TRIGGER web_login_changed AFTER UPDATE OR DELETE ON {quote(table)} "
            f"FOR EACH ROW EXECUTE FUNCTION web_login_changed('{kind}')"
        )
        schema_editor.execute(
            f"CREATE TRIGGER web_login_truncated AFTER TRUNCATE ON {quote(table)} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION web_login_changed('{kind}')"
        )


def drop(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    for table in tables(apps).values():
        schema_editor.execute(f"DROP TRIGGER IF EXISTS web_login_changed ON {quote(table)}")
        schema_editor.execute(f"DROP TRIGGER IF EXISTS web_login_truncated ON {quote(table)}")
    schema_editor.execute("DROP FUNCTION IF EXISTS web_login_changed()")


class Migration(migrations.Migration):
    dependencies = [
        ("web", "0002_login_session"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(create, drop, elidable=False)]
