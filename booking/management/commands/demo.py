"""python manage.py demo [--force]: a small demo lab with known logins. Safe to run again."""

from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from booking.manifest import ManifestError, manifest_apply, manifest_from_data, read_yaml
from booking.models import Group
from booking.services.groups import access_code_hash, group_access_code_rotate

LAB_FILE = Path(__file__).resolve().parents[2] / "demo" / "lab.yaml"
DEMO_GROUP = "demo-course"
DEMO_ACCESS_CODE = "DEMO-JOIN-CODE"
STUDENT = {
    "username": "student",
    "password": "student-demo-pass",
    "first_name": "Sam",
    "last_name": "Student",
    "email": "student@example.org",
}
LAB_ADMIN = {
    "username": "labadmin",
    "password": "admin-demo-pass",
    "first_name": "Lab",
    "last_name": "Admin",
    "email": "labadmin@example.org",
}
REFUSAL = (
    "Refusing to create demo logins with published passwords in a PostgreSQL database while "
    "DJANGO_DEBUG is off: this looks like production. Pass --force if it really is a demo."
)


def database_engine() -> str:
    return settings.DATABASES["default"]["ENGINE"]


def demo_manifest_data(now: datetime) -> dict[str, Any]:
    """The demo lab, its pools open from the start of this year to the end of the next."""
    data = read_yaml(LAB_FILE.read_text(encoding="utf-8"))
    year = now.year
    for pool in data["pools"].values():
        pool.setdefault("windows", {})["allowed"] = [
            {"start": f"{year}-01-01T00:00:00Z", "end": f"{year + 2}-01-01T00:00:00Z"}
        ]
    return data


def _ensure_user(fields: dict[str, str], *, superuser: bool) -> tuple[User, bool]:
    user = User.objects.filter(username=fields["username"]).first()
    if user is not None:
        return user, False
    create = User.objects.create_superuser if superuser else User.objects.create_user
    user = create(**fields)
    return user, True


class Command(BaseCommand):
    help = (
        "Load a small demo lab (booking/demo/lab.yaml) with a student and a lab admin login. "
        "Running it again changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="run even against PostgreSQL with DJANGO_DEBUG off",
        )

    def handle(self, *args, force: bool, **options) -> None:
        if not settings.DEBUG and "postgresql" in database_engine() and not force:
            raise CommandError(REFUSAL)
        now = timezone.now()
        try:
            manifest = manifest_from_data(demo_manifest_data(now))
        except ManifestError as exc:
            raise CommandError(f"{LAB_FILE}: {exc}") from None
        with transaction.atomic():
            # The demo sets its own, documented code below instead of a generated one.
            result = manifest_apply(manifest, now=now, generate_access_codes=False)
            student, _ = _ensure_user(STUDENT, superuser=False)
            _ensure_user(LAB_ADMIN, superuser=True)
            group = Group.objects.get(slug=DEMO_GROUP)
            group.members.add(student)
            if not group.access_code_hash:
                group_access_code_rotate(group=group, now=now, code=DEMO_ACCESS_CODE)
        for line in result.lines():
            self.stdout.write(line)
        self._explain(group)

    def _explain(self, group: Group) -> None:
        url = settings.PLATFORM_URL
        if group.access_code_hash == access_code_hash(DEMO_ACCESS_CODE):
            code = DEMO_ACCESS_CODE
        else:
            code = "(changed since the demo set it; rotate it in the admin to see a new one)"
        self.stdout.write(
            "\n".join(
                [
                    f"Demo lab ready at {url}",
                    f"  student:   {STUDENT['username']} / {STUDENT['password']}"
                    f"  (member of {DEMO_GROUP})",
                    f"  lab admin: {LAB_ADMIN['username']} / {LAB_ADMIN['password']}  (superuser)",
                    f"  access code of {DEMO_GROUP}: {code}",
                    "Where to go:",
                    f"  {url}/accounts/login/  sign in as the student",
                    f"  {url}/admin/  the admin (as {LAB_ADMIN['username']})",
                    f"  {url}/api/v1/pools/  the pools the signed-in user may book",
                    f"  {url}/api/v1/schema/  the API's OpenAPI document",
                    "Sessions on demo-relay sign tokens with the secret in DEMO_RELAY_SECRET.",
                ]
            )
        )
