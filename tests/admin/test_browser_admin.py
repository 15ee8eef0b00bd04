"""The admin in a real browser (Debian's Chromium driven by Playwright, live daphne): what a
lab manager and a per-experiment maintainer see. Screenshots land in
test-artifacts/screenshots/admin-*.png."""

import pytest
from django.contrib.auth.hashers import make_password
from playwright.sync_api import Page, expect

from booking.roles import LAB_MANAGER
from tests.admin import staff_user
from tests.web.test_browser import browser, new_page, server, shot  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def with_password(user):
    """The live server runs production settings: give it a hash it can check."""
    user.password = make_password(f"pw-{user.username}", hasher="pbkdf2_sha256")
    user.save(update_fields=["password"])
    return user


def admin_sign_in(page: Page, username: str) -> None:
    page.goto("/admin/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(f"pw-{username}")
    page.get_by_role("button", name="Log in").click()
    expect(
        page.get_by_role("link", name="Log out").or_(page.get_by_role("button", name="Log out"))
    ).to_be_visible()


def test_a_lab_manager_sees_the_whole_lab(lab, new_page):  # noqa: F811
    with_password(staff_user("lab-manager", LAB_MANAGER))
    page = new_page()
    admin_sign_in(page, "lab-manager")
    expect(page.get_by_role("link", name="Experiments", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Audit entries")).to_be_visible()
    shot(page, "admin-lab-manager-index")
    page.goto("/admin/booking/experiment/")
    for slug in ("dev00", "pend00", "pend01", "spin00"):
        expect(page.get_by_role("link", name=slug, exact=True)).to_be_visible()
    shot(page, "admin-lab-manager-experiments")
    page.goto(f"/admin/booking/pool/{lab.pool.pk}/change/")
    expect(page.get_by_label("Max duration")).to_be_editable()
    shot(page, "admin-lab-manager-pool")


def test_a_per_experiment_maintainer_sees_only_their_own(lab, new_page):  # noqa: F811
    lab.maintainer.is_staff = True
    lab.maintainer.save(update_fields=["is_staff"])
    with_password(lab.maintainer)
    page = new_page()
    admin_sign_in(page, "maintainer")
    page.goto("/admin/booking/experiment/")
    expect(page.get_by_role("link", name="dev00", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="pend00", exact=True)).to_have_count(0)
    shot(page, "admin-maintainer-experiments")
    page.goto(f"/admin/booking/experiment/{lab.hidden.pk}/change/")
    expect(page.get_by_role("checkbox", name="Available")).to_be_editable()
    expect(page.get_by_label("Topic stub")).to_have_count(0)  # not theirs to change
    shot(page, "admin-maintainer-own-experiment")
    refused = page.goto(f"/admin/booking/experiment/{lab.pend00.pk}/change/")
    assert refused.status in (403, 404)
    shot(page, "admin-maintainer-someone-elses-experiment")
