from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from booking.models import Relay
from relay_control.api_tokens import relay_token_create


class Command(BaseCommand):
    help = "Create an API token for RELAY (to read the revocation feed); prints only the token."

    def add_arguments(self, parser):
        parser.add_argument("relay", help="the relay's key (slug)")
        parser.add_argument("--name", default="", help="a label to recognise the token by")

    def handle(self, *args, relay: str, name: str, **options):
        found = Relay.objects.filter(slug=relay).first()
        if found is None:
            raise CommandError(f"There is no relay {relay!r}.")
        _, token = relay_token_create(relay=found, now=timezone.now(), name=name or "command line")
        self.stdout.write(token)
