"""python manage.py export_manifest [--output FILE]"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from booking.manifest import manifest_dump, manifest_export

HEADER = "# The catalogue as a manifest. Access codes and relay secrets are never exported.\n"


class Command(BaseCommand):
    help = "Print the whole catalogue as a YAML manifest (no secrets, no access codes)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", "-o", help="write to this file instead of printing")

    def handle(self, *args, output: str | None, **options) -> None:
        text = HEADER + manifest_dump(manifest_export())
        if output is None:
            self.stdout.write(text, ending="")
            return
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {output}: {exc}") from None
