"""python manage.py setup_roles"""

from django.core.management.base import BaseCommand

from booking.roles import roles_setup


class Command(BaseCommand):
    help = (
        "Create the staff roles (Lab manager, Experiment maintainer, Pool manager, Policy "
        "editor) as groups and give each exactly its permissions. Safe to run again."
    )

    def handle(self, *args, **options) -> None:
        for role in roles_setup():
            state = "created" if role.created else "updated"
            self.stdout.write(f"{role.name}: {role.permissions} permissions ({state})")
