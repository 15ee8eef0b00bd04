"""The staff roles (Django groups with permissions); see booking/roles.py."""

from django.db import migrations


def create_roles(apps, schema_editor):
    from booking.roles import roles_setup

    roles_setup(apps=apps)


class Migration(migrations.Migration):
    dependencies = [
        ("booking", "0003_emailrecord"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
