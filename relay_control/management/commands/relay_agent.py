import os
import select
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from relay_control.agent import AgentConfig, AgentError, Credential, RelayAgent, check_url


class SignalStop:
    """Set by SIGTERM or SIGINT; wait() wakes at once.

    A pipe rather than threading.Event: setting an Event from a signal handler can deadlock
    when the signal lands while the main thread holds the Event's own lock.
    """

    def __init__(self) -> None:
        self._set = False
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self._set = True
        try:
            os.write(self._write, b"\0")
        except BlockingIOError:
            pass  # already woken

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        if not self._set:
            select.select([self._read], [], [], timeout)
        return self._set


class Command(BaseCommand):
    help = (
        "Keep the local practable relay's deny list in step with the platform's revocation "
        "feed (the relay forgets it when it restarts). Stops on SIGTERM or SIGINT."
    )

    def add_arguments(self, parser):
        parser.add_argument("--feed", required=True, help="the platform's base URL")
        token = parser.add_mutually_exclusive_group(required=True)
        token.add_argument("--token-file", help="file holding the relay API token")
        token.add_argument("--token-env", help="environment variable holding it")
        parser.add_argument("--relay", required=True, help="the relay's access root URL")
        secret = parser.add_mutually_exclusive_group(required=True)
        secret.add_argument("--relay-secret-env", help="environment variable: the relay secret")
        secret.add_argument("--relay-secret-file", help="file holding the relay secret")
        parser.add_argument("--audience", help="the relay's audience (default: --relay)")
        parser.add_argument("--issuer", help="admin tokens' iss (default: PLATFORM_URL)")
        parser.add_argument(
            "--interval",
            type=float,
            default=settings.RELAY_AGENT_INTERVAL,
            help="seconds between polls (default: RELAY_AGENT_INTERVAL, 5)",
        )
        parser.add_argument(
            "--resend-every",
            type=float,
            default=60.0,
            help="seconds between full snapshots sent to the relay (default 60)",
        )
        parser.add_argument("--timeout", type=float, default=5.0, help="per HTTP call")
        parser.add_argument("--once", action="store_true", help="one cycle, then exit")

    def handle(self, *args, **options):
        try:
            agent = RelayAgent(self._config(options))
        except AgentError as error:
            raise CommandError(str(error)) from error
        if options["once"]:
            report = agent.cycle()
            if not report.ok:
                raise CommandError(f"the cycle did not complete: {report.summary()}")
            self.stdout.write(report.summary())
            return
        stop = SignalStop()
        stop.install()
        agent.run(stop)

    def _config(self, options: dict) -> AgentConfig:
        for name in ("interval", "resend_every", "timeout"):
            if options[name] <= 0:
                raise AgentError(f"--{name.replace('_', '-')} must be positive")
        relay_url = options["relay"]
        config = AgentConfig(
            feed_url=check_url(options["feed"], "--feed"),
            api_token=Credential(
                "relay API token",
                file=options["token_file"] or "",
                env=options["token_env"] or "",
            ),
            relay_url=check_url(relay_url, "--relay"),
            relay_secret=Credential(
                "relay secret",
                file=options["relay_secret_file"] or "",
                env=options["relay_secret_env"] or "",
            ),
            audience=options["audience"] or relay_url,
            issuer=options["issuer"] or settings.PLATFORM_URL,
            interval=options["interval"],
            resend_every=options["resend_every"],
            timeout=options["timeout"],
        )
        # Read once now so that a missing credential stops the agent at once; each use
        # reads them again (a rotated one needs no restart).
        config.api_token.read()
        config.relay_secret.read()
        return config
