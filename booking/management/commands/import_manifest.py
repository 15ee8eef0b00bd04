"""python manage.py import_manifest FILE.yaml [--dry-run] [--prune]"""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from booking.manifest import (
    ManifestError,
    change_lines,
    load_manifest,
    manifest_apply,
    manifest_plan,
)


class Command(BaseCommand):
    help = (
        "Create and update the catalogue from a YAML manifest and print the diff "
        "(nothing when nothing changed). What the file leaves out stays, unless --prune."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the manifest (YAML); - reads standard input")
        parser.add_argument(
            "--dry-run", action="store_true", help="print the diff and change nothing"
        )
        parser.add_argument(
            "--prune",
            action="store_true",
            help="delete what the file leaves out (except what current or future bookings need)",
        )

    def handle(self, *args, file: str, dry_run: bool, prune: bool, **options) -> None:
        text = self._read(file)
        now = timezone.now()
        try:
            manifest = load_manifest(text, name=file)
            if dry_run:
                lines = change_lines(manifest_plan(manifest, prune=prune, now=now))
            else:
                lines = manifest_apply(manifest, now=now, prune=prune).lines()
        except ManifestError as exc:
            raise CommandError(f"{file}: {exc}") from None
        for line in lines:
            self.stdout.write(line)
        if dry_run and lines:
            self.stderr.write("Dry run: nothing was changed.")

    def _read(self, file: str) -> str:
        if file == "-":
            return sys.stdin.read()
        try:
            return Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {file}: {exc}") from None
