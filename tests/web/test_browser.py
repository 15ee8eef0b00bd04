"""The students' pages end to end: Chromium (Debian's, driven by Playwright) against a live
daphne on the test database.

    .venv/bin/pytest tests/web/test_browser.py

Each page's screenshot lands in test-artifacts/screenshots/. The calendar and session
screenshots in docs/screenshots/ (shown in the README) are refreshed with

    SAVE_DOC_SCREENSHOTS=1 .venv/bin/pytest tests/web/test_browser.py

The browser runs in Europe/Berlin, so times typed into the booking form must arrive at the
server converted from that zone. Nothing sleeps: every wait is an expectation with a timeout.
"""

import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from django.utils import timezone
from playwright.sync_api import Page, expect, sync_playwright

from booking.errors import MESSAGES
from booking.models import UI, Booking, BookingStatus, UISet
from booking.services import group_access_code_rotate
from messaging.models import Message
from messaging.services import message_send, record_session_events
from sessions_app.models import Session
from tests.conftest import RELAY_SECRET
from tests.factories import make_booking
from tests.support.servers import WebProcess, live_env

pytestmark = [
    pytest.mark.live,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("live_passwords"),
]

ROOT = Path(__file__).resolve().parent.parent.parent
SHOTS = ROOT / "test-artifacts" / "screenshots"
DOC_SHOTS = ROOT / "docs" / "screenshots"
DOC_PAGES = ("calendar", "session")
ZONE = ZoneInfo("Europe/Berlin")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 10_000

expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker):
    """One daphne for the module; each test's data is committed to the database it reads."""
    daphne = WebProcess(live_env(RELAY_TEST_SECRET=RELAY_SECRET)).start()
    yield daphne
    daphne.stop()


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API keeps an event loop running in this thread; the test's own ORM
    # calls (fixtures, checks) are plain synchronous code all the same.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()


@pytest.fixture
def new_page(browser, server):
    """Pages in fresh browser contexts (separate cookies), in Berlin, British English."""
    contexts = []

    def make(width: int = 1280, height: int = 900) -> Page:
        context = browser.new_context(
            base_url=server.url,
            locale="en-GB",
            timezone_id="Europe/Berlin",
            viewport={"width": width, "height": height},
        )
        context.set_default_timeout(WAIT_MS)
        context.on("dialog", lambda dialog: dialog.accept())  # "Cancel booking ...?" and such
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(autouse=True)
def titled_lab(lab):
    """The lab with the titles and descriptions a real one has (they show in screenshots)."""
    for experiment, title in ((lab.pend00, "Pendulum 00"), (lab.pend01, "Pendulum 01")):
        experiment.title = title
        experiment.description = "A driven pendulum with an angle encoder and a camera."
        experiment.save()
    lab.pool.description = "Two identical pendulums; book either, or let us pick a free one."
    lab.pool.save()
    lab.group.title = "Mechanics 101"
    lab.group.save()
    return lab


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if name in DOC_PAGES and os.environ.get("SAVE_DOC_SCREENSHOTS") == "1":
        DOC_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOC_SHOTS / path.name)


def sign_in(page: Page, username: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(f"pw-{username}")
    page.get_by_role("button", name="Sign in").click()


def berlin(day: datetime, hour: int, minute: int = 0) -> datetime:
    local = day.astimezone(ZONE)
    return local.replace(hour=hour, minute=minute, second=0, microsecond=0)


def fill_booking(page: Page, start: datetime, minutes: int, experiment: str = "") -> None:
    local = start.astimezone(ZONE)
    page.get_by_label("Date", exact=True).fill(local.strftime("%Y-%m-%d"))
    page.get_by_label(re.compile("^Start time")).fill(local.strftime("%H:%M"))
    page.get_by_label("Length in minutes", exact=True).fill(str(minutes))
    page.get_by_label("Experiment", exact=True).select_option(experiment)


def session_event(booking: Booking, type: str, **payload) -> None:
    """Record an event as the server's jobs do (this process's channel layer tells no one,
    so the page learns of it from the record: on a reload or a gap in seq)."""
    session = Session.objects.get(booking=booking)
    with transaction.atomic():
        record_session_events(
            session_ids=[session.pk], type=type, payload=payload, now=timezone.now()
        )


def with_ui_links(lab) -> None:
    ui_set = UISet.objects.create(slug="pendulums")
    for slug, title, path in (
        ("pendulum-ui", "Pendulum", "pendulum"),
        ("logger", "Data logger", "logger"),
    ):
        ui_set.uis.add(
            UI.objects.create(
                slug=slug, title=title, url=f"http://127.0.0.1:9/{path}/?s={{{{session}}}}"
            )
        )
    lab.pool.ui_set = ui_set
    lab.pool.save()


def test_a_student_joins_by_link_books_and_sees_the_booking(new_page, lab):
    code = group_access_code_rotate(group=lab.group, now=timezone.now())
    tomorrow = timezone.now() + timedelta(days=1)
    for experiment, hour in ((lab.pend00, 9), (lab.pend01, 11), (lab.pend00, 14), (lab.pend01, 14)):
        make_booking(lab.student2, lab.pool, experiment, berlin(tomorrow, hour), minutes=30)

    page = new_page()
    page.goto("/")
    shot(page, "home-signed-out")
    page.goto(f"/join/{code}/")
    expect(page.get_by_role("heading", name="Join Mechanics 101")).to_be_visible()
    shot(page, "join")
    page.get_by_role("link", name="Sign in to join").click()
    shot(page, "login")
    sign_in(page, "outsider")

    expect(page).to_have_url(re.compile(r"/pools/pendulums/$"))
    expect(page.locator("#flash")).to_contain_text("You joined Mechanics 101.")
    expect(page.locator(".cal-free").first).to_be_visible()
    page.get_by_role("button", name="Next day").click()
    local = tomorrow.astimezone(ZONE)
    expect(page.locator("#cal-range")).to_contain_text(f"{local.day} {local:%B %Y}")
    # Tomorrow (Berlin) Pendulum 00 is taken 09:00-09:30 and 14:00-14:30.
    pend00 = page.locator(".cal-row", has_text="Pendulum 00").locator(".cal-free")
    expect(pend00).to_have_count(3)
    expect(pend00.nth(1)).to_have_attribute(
        "aria-label", "Free 09:30 to 14:00, Pendulum 00. Use this start."
    )
    shot(page, "calendar")

    # Keyboard: a free stretch puts its start and experiment into the form.
    pend00.nth(1).focus()
    page.keyboard.press("Enter")
    expect(page.get_by_label(re.compile("^Start time"))).to_have_value("09:30")
    expect(page.get_by_label("Experiment", exact=True)).to_have_value("pend00")
    expect(page.get_by_label("Length in minutes", exact=True)).to_be_focused()

    page.get_by_role("button", name="Week", exact=True).click()
    expect(page.get_by_role("button", name="Week", exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(page.locator(".cal-row:not(.cal-scale-row)")).to_have_count(7)
    page.get_by_label("Show", exact=True).select_option("pend01")
    expect(page.locator(".cal-free").first).to_have_attribute(
        "aria-label", re.compile(r"Pendulum 01\. Use this start\.$")
    )
    shot(page, "calendar-week")

    start = berlin(tomorrow, 10)
    fill_booking(page, start, 20, "pend00")
    page.get_by_role("button", name="Book", exact=True).click()
    result = page.locator("#booking-result")
    expect(result).to_contain_text("Booked Pendulum 00")
    booking = Booking.objects.get(user=lab.outsider)
    assert booking.start == start.astimezone(UTC)
    assert booking.end == start.astimezone(UTC) + timedelta(minutes=20)
    expect(result).to_contain_text(f"Reference {booking.reference}")
    expect(result).to_contain_text("10:00 – 10:20")

    result.get_by_role("link", name="See my bookings").click()
    card = page.locator(f'[data-booking="{booking.id}"]')
    expect(card).to_contain_text(booking.reference)
    expect(card).to_contain_text("10:00")  # in Berlin, not 09:00 UTC
    expect(card.get_by_role("link", name=re.compile("Add to calendar"))).to_have_attribute(
        "href", f"/bookings/{booking.id}.ics"
    )
    expect(page.locator("[data-tz-name]").first).to_have_text("Europe/Berlin")
    shot(page, "bookings")
    page.get_by_role("link", name="Book", exact=True).click()
    expect(page.get_by_role("heading", name="Experiments you can book")).to_be_visible()
    shot(page, "home")
    page.get_by_role("button", name=re.compile("^Sign out")).click()
    expect(page.get_by_role("heading", name="Signed out")).to_be_visible()
    shot(page, "signed-out")


def test_bad_input_shows_the_servers_message(new_page, lab):
    page = new_page()
    page.goto("/accounts/login/?next=/pools/pendulums/")
    sign_in(page, "student")
    expect(page.get_by_role("heading", name="Book", exact=True)).to_be_visible()
    error = page.locator("#booking-error")
    book = page.get_by_role("button", name="Book", exact=True)

    fill_booking(page, timezone.now() - timedelta(hours=1), 10)
    book.click()
    expect(error).to_have_text(MESSAGES["start_in_past"])

    later = timezone.now() + timedelta(days=1)
    fill_booking(page, berlin(later, 11), 45)
    book.click()
    expect(error).to_have_text(MESSAGES["too_long"])

    # Someone else takes Pendulum 00 at that time while this form is open.
    fill_booking(page, berlin(later, 11), 15, "pend00")
    make_booking(lab.student2, lab.pool, lab.pend00, berlin(later, 11), minutes=30)
    book.click()
    expect(error).to_have_text(MESSAGES["slot_taken"])
    expect(page.locator("#booking-result")).to_be_hidden()
    shot(page, "booking-refused")
    assert not Booking.objects.filter(user=lab.student).exists()


def test_a_running_session_hears_extensions_messages_and_the_cancel(new_page, lab):
    with_ui_links(lab)
    booking = make_booking(
        lab.student, lab.pool, lab.pend00, timezone.now() - timedelta(minutes=1), minutes=10
    )
    page = new_page()
    page.goto("/accounts/login/?next=/bookings/")
    sign_in(page, "student")
    page.get_by_role("button", name="Start Pendulum 00").click()

    expect(page).to_have_url(re.compile(r"/session/$"))  # the code left the address bar
    expect(page.get_by_role("heading", name="Pendulum 00")).to_be_visible()
    expect(page.locator("#session-meta")).to_have_text(f"Booking {booking.reference} · Pendulums")
    expect(page.locator("#connection")).to_have_text("Live notices are on.")
    link = page.get_by_role("link", name=re.compile("^Pendulum"))
    expect(link).to_have_attribute("href", re.compile(r"^http://127\.0\.0\.1:9/pendulum/\?s=s_"))
    assert "s_" not in page.url

    # A staff message recorded while the socket was not told (another process), then an
    # extension from another tab: the page sees a gap in seq and replays both.
    message_send(
        target=Message.Target.USER, user=lab.student, text="Camera 2 is back.", now=timezone.now()
    )
    other = page.context.new_page()
    other.goto("/bookings/")
    other.get_by_role("button", name=re.compile("^Extend by 5 minutes")).click()
    expect(other.locator("#flash")).to_contain_text(f"Booking {booking.reference} now ends at")

    booking.refresh_from_db()
    new_end = booking.end.astimezone(ZONE).strftime("%H:%M")
    notices = page.locator("#notices")
    expect(notices).to_contain_text(f"Extended: the session now ends at {new_end}.")
    expect(notices).to_contain_text("Message from lab staff: Camera 2 is back.")
    expect(page.locator("#session-end")).to_have_text(new_end)
    shot(page, "session")

    session_event(booking, "session.ending", seconds_left=300)
    page.reload()  # the code stays in this tab; the notices come back from the record
    expect(page.get_by_role("heading", name="Pendulum 00")).to_be_visible()
    expect(page.locator("#notices li")).to_have_count(3)
    expect(notices).to_contain_text("5 minutes left.")
    expect(page.locator("#connection")).to_have_text("Live notices are on.")

    other.reload()
    other.get_by_role("button", name=f"Cancel booking {booking.reference}").click()
    expect(other.locator("#flash")).to_contain_text(f"Booking {booking.reference} is cancelled.")
    expect(page.get_by_role("heading", name="This session has ended")).to_be_visible()
    expect(page.locator("#session-ended-text")).to_have_text("The session was cancelled by you.")
    expect(notices).to_contain_text("The session was cancelled by you.")
    expect(page.locator("#session-live")).to_be_hidden()

    # After the end, a reload still shows what happened, and the survey that came later.
    session_event(booking, "survey", url="https://survey.example.org/?r=" + booking.reference)
    page.reload()
    expect(page.locator("#session-ended-text")).to_have_text("The session was cancelled by you.")
    survey = page.get_by_role("link", name="Answer a short survey")
    expect(survey).to_have_attribute("href", f"https://survey.example.org/?r={booking.reference}")
    expect(page.locator("#notices li")).to_have_count(5)
    shot(page, "session-ended")


def test_a_guest_books_ends_the_session_and_finds_the_booking(new_page, lab):
    code = group_access_code_rotate(group=lab.group, now=timezone.now())
    page = new_page(width=390, height=844)  # a phone
    page.goto(f"/join/{code}/")
    page.get_by_label("First name").fill("Gina")
    page.get_by_label("Last name").fill("Guest")
    page.get_by_label("E-mail address").fill("gina@example.org")
    page.get_by_role("button", name="Continue as a guest").click()
    expect(page.locator("#flash")).to_contain_text(
        "Welcome, Gina: you joined Mechanics 101 as a guest."
    )
    shot(page, "calendar-phone")

    page.get_by_role("button", name="Now").click()
    page.get_by_label("Length in minutes", exact=True).fill("10")
    page.get_by_role("button", name="Book", exact=True).click()
    expect(page.locator("#booking-result")).to_contain_text("Booked")
    booking = Booking.objects.get(user__last_name="Guest")
    assert booking.user.username.startswith("guest-gina-guest-")

    page.get_by_role("link", name="See my bookings").click()
    expect(page.get_by_text("signed in as a guest in this browser only")).to_be_visible()
    page.get_by_role("button", name=re.compile("^Start")).click()
    expect(page.locator("#connection")).to_have_text("Live notices are on.")
    shot(page, "session-phone")
    page.get_by_role("button", name="End session now").click()
    expect(page.locator("#session-ended-text")).to_have_text("The session was cancelled by you.")
    expect(page.locator("#notices")).to_contain_text("cancelled by you")
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CANCELLED

    stranger = new_page()
    stranger.goto("/bookings/lookup/")
    stranger.get_by_label("Booking reference").fill(booking.reference.lower())
    stranger.get_by_label("Last name").fill("guest")
    stranger.get_by_role("button", name="Find").click()
    found = stranger.get_by_role("region", name=f"Booking {booking.reference}")
    expect(found).to_contain_text(booking.experiment.title)
    expect(found).to_contain_text("cancelled")
    shot(stranger, "lookup")
