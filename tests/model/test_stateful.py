"""The platform as a state machine: random bookings, cancels, extensions and sessions by a
few users, the sweep, the purge, maintenance switched on and off, and a relay agent that
polls the revocation feed into a relay which may restart or go away, all through the real
services on the test database, with a clock that only moves forward.

Each step is checked against a model of what should have happened (the booking rules
recomputed independently from the model's own bookings), and after every step the
invariants are checked against the database:

- the database holds exactly the model's bookings; no two active ones of an experiment
  overlap; every user's max_bookings and quota hold (recomputed with booking.rules);
- a booking the service confirmed is readable by its owner;
- every revoked booking whose exp has not passed is in its relay's feed, and nothing else;
- nothing is purged before exp + leeway;
- after a successful poll the relay's deny list is the feed's unexpired entries (after the
  relay lost its list without the agent noticing: at least every entry revoked since).

PROOF_EXAMPLES and PROOF_STEPS make the run longer (benchmarks/proof.py does).
"""

import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from booking import rules
from booking.errors import ApiError
from booking.models import Booking, Experiment, Pool, WindowKind
from booking.models.bookings import ACTIVE_STATUSES
from booking.selectors import booking_get_for_user, pool_availability
from booking.services import booking_create, booking_sweep
from relay_control import agent as agent_module
from relay_control.agent import (
    AgentConfig,
    Answer,
    Credential,
    CycleReport,
    RelayAgent,
    Unreachable,
)
from relay_control.api_tokens import relay_token_create
from relay_control.models import Revocation
from relay_control.services import revocation_purge
from sessions_app.tokens import TokenError, read_as_practable_relay
from tests.conftest import NOW, RELAY_SECRET
from tests.factories import make_experiment, make_relay, make_window
from tests.support.practable_relay import RelayState
from workflows.actions import booking_cancel_action, booking_extend_action, session_start_action

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("PROOF_EXAMPLES", "25"))
STEPS = int(os.environ.get("PROOF_STEPS", "30"))

# The pool's policy for the run (the lab's pool, with a quota and a third booking).
MIN, MAX = 300, 1800
BOOK_AHEAD = 7 * 86400
START_IN_PAST = 120
MAX_BOOKINGS = 3
GRACE = 300
STEP = 300
MAX_EXTENSION = 900
QUOTA_PERIOD, QUOTA_LIMIT = 86400, 3600
MAINTENANCE = (NOW + timedelta(hours=2), NOW + timedelta(hours=3))
GRID = 300  # starts fall on a 5-minute grid, so that bookings often touch or collide

PLATFORM_URL = "http://platform.test"
RELAY_URL = "http://relay-a.test"
FEED_TOKEN_ENV = "MODEL_FEED_TOKEN"
RESEND_EVERY = 3 * 3600.0
FEED = "/api/v1/relay/revocations/"

# Who may book what: "others" is a pool no group grants, "nope" no pool at all; spin00 is
# not in the pool; dev00 is hidden and maintained by "maintainer"; pend02 is on relay B.
POOL_EXPERIMENTS = ("pend00", "pend01", "dev00", "pend02")
EXPERIMENT_RELAY = {"pend00": "a", "pend01": "a", "dev00": "a", "pend02": "b"}
MEMBERS = ("student", "student2", "maintainer")

BOOK_CODES = {
    "invalid",
    "not_member",
    "experiment_unavailable",
    "start_in_past",
    "too_far_ahead",
    "too_short",
    "too_long",
    "outside_window",
    "max_bookings",
    "quota_exceeded",
    "slot_taken",
}

STATS: Counter = Counter()


# --- the world -----------------------------------------------------------------------------


@dataclass
class World:
    users: dict[str, User]
    pool: Pool
    feed_tokens: dict[str, str]  # relay "a"/"b": its API token
    # Test clients are made once: each new one loads the middleware (and scans static files).
    anonymous: Client
    browsers: dict[str, Client]


@pytest.fixture
def world(lab, monkeypatch) -> World:
    pool = lab.pool
    for name, value in {
        "min_duration": MIN,
        "max_duration": MAX,
        "book_ahead": BOOK_AHEAD,
        "start_in_past": START_IN_PAST,
        "max_bookings": MAX_BOOKINGS,
        "grace_period": GRACE,
        "extend_step": STEP,
        "max_extension": MAX_EXTENSION,
        "quota_period": QUOTA_PERIOD,
        "quota_limit": QUOTA_LIMIT,
    }.items():
        setattr(pool, name, value)
    pool.save()
    relay_b = make_relay("relay-b")
    pool.experiments.add(make_experiment("pend02", relay_b))
    make_window(pool, WindowKind.DENIED, *MAINTENANCE)
    _, token_a = relay_token_create(relay=lab.relay, now=timezone.now())
    _, token_b = relay_token_create(relay=relay_b, now=timezone.now())
    monkeypatch.setenv(FEED_TOKEN_ENV, token_a)
    users = {u.username: u for u in (lab.student, lab.student2, lab.maintainer, lab.outsider)}
    browsers = {name: Client() for name in users}
    return World(users, pool, {"a": token_a, "b": token_b}, Client(), browsers)


# --- the model's bookings and its independent reading of the rules -------------------------


@dataclass
class Planned:
    owner: str
    experiment: str
    start: datetime
    end: datetime
    booked_end: datetime
    created: datetime
    status: str = "booked"
    session: bool = False
    cancelled_at: datetime | None = None

    def active_at(self, now: datetime) -> bool:
        return self.status in ACTIVE_STATUSES and self.end > now

    def counted(self) -> tuple[datetime, datetime] | None:
        """What the quota counts: cancelled before the start nothing, while running up to
        the cancellation, everything else in full."""
        if self.status == "cancelled":
            if self.cancelled_at is None or self.cancelled_at <= self.start:
                return None
            return (self.start, min(self.end, self.cancelled_at))
        return (self.start, self.end)


def overlapping(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def peak_usage(intervals: list[tuple[datetime, datetime]], period: int) -> float:
    """The most seconds inside any window [t, t + period): the total is piecewise linear in
    t, so a maximum lies where a window edge meets an interval edge."""
    span = timedelta(seconds=period)
    best = 0.0
    for t in {s for s, _ in intervals} | {e - span for _, e in intervals}:
        total = sum(max(0.0, (min(e, t + span) - max(s, t)).total_seconds()) for s, e in intervals)
        best = max(best, total)
    return best


def grid(now: datetime) -> datetime:
    return NOW + timedelta(seconds=(now - NOW).total_seconds() // GRID * GRID)


def subtract(
    spans: list[tuple[datetime, datetime]], cut: tuple[datetime, datetime]
) -> list[tuple[datetime, datetime]]:
    out = []
    for s, e in spans:
        if not overlapping((s, e), cut):
            out.append((s, e))
            continue
        if s < cut[0]:
            out.append((s, cut[0]))
        if cut[1] < e:
            out.append((cut[1], e))
    return out


# --- the relay, in memory -------------------------------------------------------------------


class ModelRelay:
    """The practable relay's deny list (tests.support.practable_relay.RelayState) behind its
    HTTP rules. It forgets everything when it restarts, and may be down."""

    def __init__(self) -> None:
        self.up = True
        self.state = self._fresh()

    @staticmethod
    def _fresh() -> RelayState:
        return RelayState(secret=RELAY_SECRET.encode(), audience=RELAY_URL, clock=time.time)

    def restart(self) -> None:
        self.state = self._fresh()

    def denied(self, now: float) -> set[str]:
        return {bid for bid, exp in self.state.denied.items() if exp > now}

    def answer(self, method: str, path: str, headers: dict[str, str]) -> Answer:
        if not self.up:
            raise Unreachable("relay-a.test: connection refused")
        try:
            claims = read_as_practable_relay(
                headers.get("Authorization", ""), secret=RELAY_SECRET.encode(), audience=RELAY_URL
            )
        except TokenError:
            return Answer(500, b'{"code": 500, "message": "token invalid"}')
        if "relay:admin" not in claims.get("scopes", []):
            return Answer(401, b'{"code": "401", "message": "missing relay:admin"}')
        parts = urlsplit(path)
        assert parts.path == "/bids/deny", path
        if method == "GET":
            return Answer(200, json.dumps({"booking_ids": self.state.deny_list()}).encode())
        query = parse_qs(parts.query)
        exp = int(query["exp"][0])
        if exp < self.state.clock():
            return Answer(400, b'{"code": "400", "message": "exp in the past"}')
        self.state.deny(query["bid"][0], exp)
        return Answer(204, b"")


# --- the machine ----------------------------------------------------------------------------

USERS = st.sampled_from(["student"] * 4 + ["student2"] * 4 + ["maintainer"] * 2 + ["outsider"])
POOLS = st.sampled_from(["pendulums"] * 18 + ["others", "nope"])
EXPERIMENTS = st.sampled_from(
    [None, None, None, "pend00", "pend00", "pend01", "pend02", "dev00", "spin00"]
)
STARTS = st.one_of(
    st.integers(-3, 60).map(lambda k: k * GRID),  # the next five hours, and just past
    st.sampled_from([-150, -120, -60, 60]),  # around the start-in-past tolerance
    st.integers(7 * 288 - 2, 7 * 288 + 2).map(lambda k: k * GRID),  # around book_ahead
)
SOON = st.integers(-1, 3).map(lambda k: k * GRID)  # running, or about to be
LENGTHS = st.sampled_from([1, 4, 5, 10, 15, 20, 25, 30, 31, 45])
EXTENSIONS = st.sampled_from([None, 5, 5, 10, 15, 20, 3])
ADVANCES = st.sampled_from([1, 2, 5, 5, 10, 15, 30, 60, 120, 360, 1440])


class PlatformMachine(RuleBasedStateMachine):
    bookings = Bundle("bookings")

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world
        # Each run is a savepoint, rolled back in teardown: the next run starts from the lab.
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self._travel = time_machine.travel(NOW, tick=False)
        self.clock = self._travel.start()
        self._http = mock.patch.object(agent_module, "http_call", self.transport)
        self._http.start()
        self.logged_in: set[str] = set()
        self.relay = ModelRelay()
        self.agent = self.new_agent()
        self.planned: dict[str, Planned] = {}
        self.codes: dict[str, str] = {}  # booking id: session code
        self.revoked: dict[str, int] = {}  # booking id: exp, Unix seconds
        self.pend01_available = True
        self.stale = False  # the relay lost its list and the agent has not re-sent it yet
        self.lost_cursor = 0

    def teardown(self) -> None:
        try:
            self._http.stop()
            self._travel.stop()
        finally:
            transaction.set_rollback(True)
            self._atomic.__exit__(None, None, None)

    # --- plumbing ---------------------------------------------------------------------------

    def new_agent(self) -> RelayAgent:
        config = AgentConfig(
            feed_url=PLATFORM_URL,
            api_token=Credential("feed token", env=FEED_TOKEN_ENV),
            relay_url=RELAY_URL,
            relay_secret=Credential("relay secret", env="RELAY_TEST_SECRET"),
            audience=RELAY_URL,
            issuer=PLATFORM_URL,
            resend_every=RESEND_EVERY,
        )
        return RelayAgent(config, clock=time.time, monotonic=time.time)

    def transport(self, method: str, url: str, *, headers: dict, timeout: float) -> Answer:
        """The agent's HTTP: the feed through Django's test client, the relay in memory."""
        if url.startswith(PLATFORM_URL):
            assert method == "GET"
            response = self.world.anonymous.get(url.removeprefix(PLATFORM_URL), headers=headers)
            return Answer(response.status_code, response.content)
        assert url.startswith(RELAY_URL), url
        return self.relay.answer(method, url.removeprefix(RELAY_URL), headers)

    def client(self, username: str) -> Client:
        browser = self.world.browsers[username]
        if username not in self.logged_in:  # each run's sessions are rolled back with it
            browser.force_login(self.world.users[username])
            self.logged_in.add(username)
        return browser

    def feed(self, relay: str) -> dict[str, dict]:
        token = self.world.feed_tokens[relay]
        response = self.world.anonymous.get(FEED, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["snapshot"] is True
        return {e["booking_id"]: e for e in body["entries"]}

    def bookable(self, who: str) -> list[str]:
        """The experiments of the pool that `who` may book right now."""
        out = ["pend00", "pend02"]
        if self.pend01_available:
            out.append("pend01")
        if who == "maintainer":
            out.append("dev00")
        return out

    def busy(self, experiment: str, interval: tuple, *, but: str = "") -> bool:
        return any(
            b.experiment == experiment
            and b.status in ACTIVE_STATUSES
            and bid != but
            and overlapping((b.start, b.end), interval)
            for bid, b in self.planned.items()
        )

    def held(self, who: str, now: datetime) -> int:
        return sum(1 for b in self.planned.values() if b.owner == who and b.active_at(now))

    def usage(self, who: str, *, but: str = "") -> list[tuple[datetime, datetime]]:
        return [
            part
            for bid, b in self.planned.items()
            if b.owner == who and bid != but and (part := b.counted()) is not None
        ]

    # --- the rules, read independently ---------------------------------------------------

    def book_verdict(
        self, who: str, pool: str, experiment: str | None, interval: tuple, now: datetime
    ) -> tuple[str | None, list[str]]:
        """The refusal the service must give (in its order of checks), or None and the
        experiments it may pick from."""
        if pool not in ("pendulums", "others"):
            return "invalid", []
        if pool == "others" or who not in MEMBERS:
            return "not_member", []
        if experiment is not None and experiment not in POOL_EXPERIMENTS:
            return "invalid", []
        candidates = self.bookable(who)
        if experiment is not None:
            if experiment not in candidates:
                return "experiment_unavailable", []
            candidates = [experiment]
        start, end = interval
        length = (end - start).total_seconds()
        if start < now - timedelta(seconds=START_IN_PAST):
            return "start_in_past", []
        if start > now + timedelta(seconds=BOOK_AHEAD):
            return "too_far_ahead", []
        if length < MIN:
            return "too_short", []
        if length > MAX:
            return "too_long", []
        if overlapping(interval, MAINTENANCE):
            return "outside_window", []
        if self.held(who, now) >= MAX_BOOKINGS:
            return "max_bookings", []
        if peak_usage([*self.usage(who), interval], QUOTA_PERIOD) > QUOTA_LIMIT:
            return "quota_exceeded", []
        free = [e for e in candidates if not self.busy(e, interval)]
        if not free:
            return "slot_taken", []
        return None, free

    def extend_verdict(self, bid: str, seconds: int | None, now: datetime) -> str | None:
        b = self.planned[bid]
        if not b.active_at(now):
            return "booking_over"
        if b.start > now:
            return "not_started_yet"
        step = STEP if seconds is None else seconds
        if step <= 0 or step % STEP:
            return "invalid"
        new_end = b.end + timedelta(seconds=step)
        if (new_end - b.booked_end).total_seconds() > MAX_EXTENSION:
            return "extension_limit"
        added = (b.end, new_end)
        if overlapping(added, MAINTENANCE):
            return "outside_window"
        usage = [*self.usage(b.owner, but=bid), (b.start, new_end)]
        if peak_usage(usage, QUOTA_PERIOD) > QUOTA_LIMIT:
            return "quota_exceeded"
        if self.busy(b.experiment, added, but=bid):
            return "extension_blocked"
        return None

    # --- rules ------------------------------------------------------------------------------

    @rule(
        target=bookings,
        who=USERS,
        pool=POOLS,
        experiment=EXPERIMENTS,
        offset=STARTS,
        minutes=LENGTHS,
    )
    def book(self, who, pool, experiment, offset, minutes):
        now = timezone.now()
        start = grid(now) + timedelta(seconds=offset)
        interval = (start, start + timedelta(minutes=minutes))
        expected, free = self.book_verdict(who, pool, experiment, interval, now)
        try:
            booking = booking_create(
                user=self.world.users[who],
                pool_slug=pool,
                experiment_slug=experiment,
                start=interval[0],
                end=interval[1],
                now=now,
            )
        except ApiError as error:
            STATS[f"book refused: {error.code}"] += 1
            assert error.code in BOOK_CODES, error
            assert error.code == expected, (error, expected, interval)
            return multiple()
        STATS["book confirmed"] += 1
        assert expected is None, (expected, interval)
        bid = str(booking.id)
        assert booking.experiment.slug in free, (booking.experiment.slug, free)
        self.planned[bid] = Planned(
            owner=who,
            experiment=booking.experiment.slug,
            start=interval[0],
            end=interval[1],
            booked_end=interval[1],
            created=now,
        )
        # Confirmed means readable, through the API, by its owner.
        response = self.client(who).get(f"/api/v1/bookings/{bid}/")
        assert response.status_code == 200, response.content
        assert response.json()["status"] == "booked"
        return bid

    @rule(target=bookings, who=USERS, experiment=EXPERIMENTS, offset=SOON, minutes=LENGTHS)
    def book_now(self, who, experiment, offset, minutes):
        """Bookings that start about now, so that sessions, extensions and running cancels
        are common."""
        return self.book(who, "pendulums", experiment, offset, minutes)

    @rule(booking=bookings)
    def cancel(self, booking):
        now = timezone.now()
        planned = self.planned[booking]
        changes = planned.active_at(now)
        result = booking_cancel_action(
            booking=Booking.objects.get(pk=booking), by=self.world.users[planned.owner], now=now
        )
        STATS[f"cancel {'done' if changes else 'unchanged'}"] += 1
        if changes:
            assert result.status == "cancelled"
            planned.status, planned.cancelled_at = "cancelled", now
            if planned.session:
                self.revoked[booking] = int(planned.end.timestamp())
                STATS["revocations"] += 1
        assert result.status == planned.status
        if booking in self.codes:
            # The bearer session endpoints agree: the booking is over.
            response = self.world.anonymous.get(
                "/api/v1/session/", headers={"Authorization": f"Bearer {self.codes[booking]}"}
            )
            assert response.status_code == 410, response.content

    @rule(booking=bookings, minutes=EXTENSIONS)
    def extend(self, booking, minutes):
        now = timezone.now()
        planned = self.planned[booking]
        seconds = None if minutes is None else minutes * 60
        expected = self.extend_verdict(booking, seconds, now)
        try:
            result = booking_extend_action(
                booking=Booking.objects.get(pk=booking),
                seconds=seconds,
                by=self.world.users[planned.owner],
                now=now,
            )
        except ApiError as error:
            STATS[f"extend refused: {error.code}"] += 1
            assert error.code == expected, (error, expected)
            return
        STATS["extend done"] += 1
        assert expected is None, expected
        planned.end += timedelta(seconds=STEP if seconds is None else seconds)
        assert result.end == planned.end

    @rule(booking=bookings)
    def start_session(self, booking):
        now = timezone.now()
        planned = self.planned[booking]
        if planned.status not in ACTIVE_STATUSES or planned.end <= now:
            expected = "booking_over"
        elif planned.start > now:
            expected = "not_started_yet"
        else:
            expected = None
        try:
            state = session_start_action(
                booking=Booking.objects.get(pk=booking),
                by=self.world.users[planned.owner],
                now=now,
            )
        except ApiError as error:
            STATS[f"session refused: {error.code}"] += 1
            assert error.code == expected, (error, expected)
            return
        STATS["session started"] += 1
        assert expected is None, expected
        if booking in self.codes:
            assert state.code == self.codes[booking]  # the same session again
        self.codes[booking] = state.code
        planned.status, planned.session = "started", True
        assert {s["for"] for s in state.streams} == {"data", "video"}

    def running(self) -> list[str]:
        """The running bookings in the order they were made. Not sorted by id: ids are random,
        so the same steps would pick another booking when Hypothesis replays them, and it
        stops with FlakyStrategyDefinition."""
        now = timezone.now()
        return [bid for bid, b in self.planned.items() if b.active_at(now) and b.start <= now]

    @precondition(lambda self: self.running())
    @rule(data=st.data())
    def start_a_running_booking(self, data):
        self.start_session(data.draw(st.sampled_from(self.running())))

    @precondition(lambda self: self.running())
    @rule(data=st.data(), minutes=EXTENSIONS)
    def extend_a_running_booking(self, data, minutes):
        self.extend(data.draw(st.sampled_from(self.running())), minutes)

    @precondition(lambda self: self.running())
    @rule(data=st.data())
    def start_and_cancel_a_session(self, data):
        """A student opens the experiment and gives up at once: the tokens are revoked."""
        booking = data.draw(st.sampled_from(self.running()))
        self.start_session(booking)
        self.cancel(booking)

    @precondition(lambda self: any(self.planned[bid].session for bid in self.running()))
    @rule(data=st.data())
    def cancel_a_running_session(self, data):
        with_session = [bid for bid in self.running() if self.planned[bid].session]
        self.cancel(data.draw(st.sampled_from(with_session)))

    @rule(minutes=ADVANCES)
    def advance(self, minutes):
        self.clock.shift(timedelta(minutes=minutes))
        STATS["clock moved"] += 1

    @rule()
    def sweep(self):
        now = timezone.now()
        expected = Counter()
        for b in self.planned.values():
            if b.status == "booked" and b.start <= now:
                if now >= b.start + timedelta(seconds=GRACE) or now >= b.end:
                    b.status = "no_show"
                    expected["no_show"] += 1
            elif b.status == "started" and b.end <= now:
                b.status = "ended"
                expected["ended"] += 1
        assert booking_sweep(now=now) == {
            "no_show": expected["no_show"],
            "ended": expected["ended"],
        }
        STATS["sweeps"] += 1

    @rule()
    def purge(self):
        now = timezone.now()
        horizon = now - timedelta(seconds=django_settings.REVOCATION_LEEWAY_SECONDS)
        due = Revocation.objects.filter(exp__lt=horizon).count()
        assert revocation_purge(now=now) == due
        assert not Revocation.objects.filter(exp__lt=horizon).exists()
        STATS["purges"] += 1
        STATS["revocations purged"] += due

    @precondition(lambda self: self.revoked)
    @rule(data=st.data())
    def purge_at_the_horizon(self, data):
        """At a revocation's exp + leeway the purge must keep it; a second later, drop it."""
        exp = data.draw(st.sampled_from(sorted(self.revoked.values())))
        leeway = django_settings.REVOCATION_LEEWAY_SECONDS
        for past in (0, 1):
            moment = datetime.fromtimestamp(exp + leeway + past, tz=UTC)
            if moment > timezone.now():
                self.clock.move_to(moment)
            self.purge()
            self.the_feed_lists_every_live_revocation_and_nothing_else()

    @rule()
    def toggle_maintenance(self):
        self.pend01_available = not self.pend01_available
        Experiment.objects.filter(slug="pend01").update(available=self.pend01_available)

    @rule(who=st.sampled_from(MEMBERS), hours=st.sampled_from([1, 4, 12]))
    def availability(self, who, hours):
        """Free intervals are exactly what no booking, window or maintenance takes."""
        now = timezone.now()
        end = now + timedelta(hours=hours)
        free = pool_availability(
            pool=self.world.pool, user=self.world.users[who], start=now, end=end, now=now
        )
        visible = ["pend00", "pend01", "pend02"] + (["dev00"] if who == "maintainer" else [])
        assert sorted(free["experiments"]) == sorted(visible)
        for slug in visible:
            expected: list = []
            if slug != "pend01" or self.pend01_available:
                expected = subtract([(now, end)], MAINTENANCE)
                for b in self.planned.values():
                    if b.experiment == slug and b.status in ACTIVE_STATUSES:
                        expected = subtract(expected, (b.start, b.end))
            assert free["experiments"][slug] == sorted(expected), slug

    @rule()
    def poll(self):
        report = self.agent.cycle()
        STATS[f"poll {'ok' if report.ok else 'failed'}"] += 1
        self.check_relay(report)

    @rule(agent_restarts=st.booleans())
    def relay_restarts(self, agent_restarts):
        """The relay forgets its deny list; with it, the agent may restart too (one host)."""
        self.relay.restart()
        self.lose_relay_list()
        if agent_restarts:
            self.agent = self.new_agent()
        STATS["relay restarts"] += 1

    @rule()
    def relay_outage(self):
        """The relay goes down (losing its list), or comes back from it."""
        self.relay.up = not self.relay.up
        if not self.relay.up:
            self.relay.restart()
            self.lose_relay_list()

    def lose_relay_list(self) -> None:
        """What the relay must hold again after the agent's next good poll: every entry past
        the agent's cursor now. Older entries come back with the next snapshot (at the
        latest after RESEND_EVERY). Each loss moves that cursor: what the agent forwarded
        after an earlier loss is gone again (a counterexample of the long proof)."""
        self.stale, self.lost_cursor = True, self.agent.cursor or 0

    def check_relay(self, report: CycleReport) -> None:
        if not (self.relay.up and report.ok):
            return
        if report.snapshot:
            self.stale = False
        now = time.time()
        live = {bid: e for bid, e in self.feed("a").items() if e["exp"] > now}
        denied = self.relay.denied(now)
        if self.stale:
            assert denied <= set(live), (denied, live)
            since = {bid for bid, e in live.items() if e["seq"] > self.lost_cursor}
            assert since <= denied, (since, denied)
        else:
            assert denied == set(live), (denied, live)

    # --- invariants --------------------------------------------------------------------------

    @invariant()
    def the_database_holds_the_model(self):
        rows = {
            str(b.id): b
            for b in Booking.objects.select_related("user", "experiment").order_by("start")
        }
        assert set(rows) == set(self.planned)
        for bid, b in rows.items():
            p = self.planned[bid]
            found = (b.user.username, b.experiment.slug, b.start, b.end, b.booked_end, b.status)
            assert found == (p.owner, p.experiment, p.start, p.end, p.booked_end, p.status), bid

    @invariant()
    def no_two_active_bookings_of_an_experiment_overlap(self):
        active = Booking.objects.filter(status__in=ACTIVE_STATUSES).order_by("experiment", "start")
        previous = None
        for b in active.values("experiment_id", "start", "end"):
            if previous and previous["experiment_id"] == b["experiment_id"]:
                assert previous["end"] <= b["start"], (previous, b)
            previous = b

    @invariant()
    def limits_hold_for_every_user(self):
        now = timezone.now()
        for user in self.world.users.values():
            rows = list(
                Booking.objects.filter(user=user, pool=self.world.pool).values_list(
                    "start", "end", "status", "cancelled_at"
                )
            )
            held = sum(1 for _, end, status, _ in rows if status in ACTIVE_STATUSES and end > now)
            assert held <= MAX_BOOKINGS, (user.username, held)
            counted = [
                part
                for start, end, status, cancelled_at in rows
                if (
                    part := rules.counted_interval(
                        start=start, end=end, status=status, cancelled_at=cancelled_at
                    )
                )
            ]
            if counted:
                around = (min(s for s, _ in counted), max(e for _, e in counted))
                peak = rules.quota_peak(counted, period=QUOTA_PERIOD, around=around)
                assert peak <= QUOTA_LIMIT, (user.username, peak)

    @invariant()
    def every_booking_kept_the_policy(self):
        for b in self.planned.values():
            assert b.start >= b.created - timedelta(seconds=START_IN_PAST)
            assert b.start <= b.created + timedelta(seconds=BOOK_AHEAD)
            assert MIN <= (b.booked_end - b.start).total_seconds() <= MAX
            extension = (b.end - b.booked_end).total_seconds()
            assert 0 <= extension <= MAX_EXTENSION and extension % STEP == 0
            assert not overlapping((b.start, b.end), MAINTENANCE)
            assert b.experiment != "dev00" or b.owner == "maintainer"

    @invariant()
    def confirmed_bookings_are_readable(self):
        for bid, b in self.planned.items():
            assert booking_get_for_user(user=self.world.users[b.owner], booking_id=bid)

    @invariant()
    def the_feed_lists_every_live_revocation_and_nothing_else(self):
        now = time.time()
        leeway = django_settings.REVOCATION_LEEWAY_SECONDS
        feeds = {relay: self.feed(relay) for relay in ("a", "b")}
        for relay, entries in feeds.items():
            for bid, entry in entries.items():
                assert bid in self.revoked, entry
                assert EXPERIMENT_RELAY[self.planned[bid].experiment] == relay, entry
                assert entry["exp"] == self.revoked[bid], entry
        for bid, exp in self.revoked.items():
            relay = EXPERIMENT_RELAY[self.planned[bid].experiment]
            if exp > now:
                assert bid in feeds[relay], bid
            if exp >= now - leeway:  # nothing purged before exp + leeway
                assert Revocation.objects.filter(booking_id=bid).exists(), bid


def test_every_loss_of_the_relays_list_moves_what_the_model_expects_back(world):
    """Regression, found by benchmarks/proof.py: the relay lost its list, the agent forwarded
    a new revocation, the relay lost its list again, and the model still expected that
    revocation back after a 304 poll, which only the next snapshot brings."""
    machine = PlatformMachine(world)
    try:
        machine.agent.cursor = 3
        machine.lose_relay_list()
        machine.agent.cursor = 7  # forwarded after the first loss
        machine.lose_relay_list()
        assert (machine.stale, machine.lost_cursor) == (True, 7)
    finally:
        machine.teardown()


def test_the_platform_keeps_its_invariants_under_random_operations(world):
    try:
        run_state_machine_as_test(
            lambda: PlatformMachine(world),
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    finally:
        write_stats("stateful", STATS)


def write_stats(name: str, stats: dict) -> None:
    """For benchmarks/proof.py: what a run exercised or saw."""
    folder = os.environ.get("PROOF_STATS_DIR")
    if folder:
        Path(folder, f"{name}.json").write_text(json.dumps(dict(sorted(stats.items()))))
