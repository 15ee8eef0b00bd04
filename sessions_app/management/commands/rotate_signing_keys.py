from django.core.management.base import BaseCommand
from django.utils import timezone

from sessions_app.keys import key_rotate
from sessions_app.models import SigningKey


class Command(BaseCommand):
    help = (
        "Rotate the asymmetric signing keys: the published next key starts signing, the "
        "active one retires (still published until its tokens expire), a new next key is "
        "published. Run it at least one JWKS cache period (5 minutes) after the last run."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--algorithm",
            choices=[c for c, _ in SigningKey.Algorithm.choices] + ["all"],
            default="all",
        )

    def handle(self, *args, algorithm: str, **options):
        algorithms = (
            [c for c, _ in SigningKey.Algorithm.choices] if algorithm == "all" else [algorithm]
        )
        for name in algorithms:
            result = key_rotate(algorithm=name, now=timezone.now())
            self.stdout.write(
                f"{name}: active {result['active']}, next {result['next']}, "
                f"retired {result['retired'] or '-'}"
            )
