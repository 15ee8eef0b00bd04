"""Helpers for the admin tests: staff personas, and reading a form off an admin page the
way a browser would submit it."""

from html.parser import HTMLParser

from django.contrib.auth.models import Group as Role
from django.contrib.auth.models import User
from django.test import Client

from booking.roles import (
    EXPERIMENT_MAINTAINER,
    LAB_MANAGER,
    POLICY_EDITOR,
    POOL_MANAGER,
    roles_setup,
)
from tests.conftest import Lab, client_for
from tests.factories import make_user

ROLE_OF = {
    "lab_manager": LAB_MANAGER,
    "experiment_maintainer": EXPERIMENT_MAINTAINER,
    "pool_manager": POOL_MANAGER,
    "policy_editor": POLICY_EDITOR,
}
# Every persona of the permission matrix. The two maintainer personas are the same person
# (lab.maintainer, made staff): one acts on their own experiment, the other on someone else's.
PERSONAS = (
    "lab_manager",
    "experiment_maintainer",
    "pool_manager",
    "policy_editor",
    "own_maintainer",
    "other_maintainer",
    "student",
)


def staff_user(username: str, role: str | None = None, **fields) -> User:
    roles_setup()  # a flushed database (transactional tests) has lost the role groups
    user = make_user(username, is_staff=True, **fields)
    if role is not None:
        user.groups.add(Role.objects.get(name=role))
    return user


def persona_user(lab: Lab, persona: str) -> User:
    if persona in ROLE_OF:
        return staff_user(persona.replace("_", "-"), ROLE_OF[persona])
    if persona in ("own_maintainer", "other_maintainer"):
        lab.maintainer.is_staff = True
        lab.maintainer.save(update_fields=["is_staff"])
        return lab.maintainer
    assert persona == "student"
    return lab.student


def superuser_client() -> Client:
    return client_for(make_user("root", is_staff=True, is_superuser=True))


class _FormReader(HTMLParser):
    """The successful controls of one <form>, as a browser would send them."""

    def __init__(self, form_id: str | None):
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.inside = False
        self.data: dict[str, list[str]] = {}
        self._select: tuple[str, bool] | None = None
        self._options: list[tuple[str, bool]] = []
        self._textarea: str | None = None
        self._text: list[str] = []

    def _add(self, name: str, value: str) -> None:
        self.data.setdefault(name, []).append(value)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = self.form_id is None or a.get("id") == self.form_id
            return
        if not self.inside or "name" not in a and tag != "option":
            return
        if tag == "input":
            kind = (a.get("type") or "text").lower()
            if kind in ("submit", "button", "file", "image", "reset"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self._add(a["name"], a.get("value", "on" if kind in ("checkbox", "radio") else ""))
        elif tag == "select":
            self._select, self._options = (a["name"], "multiple" in a), []
        elif tag == "option" and self._select is not None:
            self._options.append((a.get("value", ""), "selected" in a))
        elif tag == "textarea":
            self._textarea, self._text = a["name"], []

    def handle_data(self, data):
        if self._textarea is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select" and self._select is not None:
            name, multiple = self._select
            chosen = [value for value, selected in self._options if selected]
            if not chosen and not multiple and self._options:
                chosen = [self._options[0][0]]
            for value in chosen:
                self._add(name, value)
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            text = "".join(self._text)
            self._add(self._textarea, text[1:] if text.startswith("\n") else text)
            self._textarea = None


def form_data(html: str, form_id: str | None = None) -> dict[str, list[str]]:
    reader = _FormReader(form_id)
    reader.feed(html)
    return reader.data


def refused(response, *, login_redirect_ok: bool = True) -> bool:
    """Refused as Django admin refuses: 403, 404, or (not staff) a redirect to the login."""
    if response.status_code in (403, 404):
        return True
    return (
        login_redirect_ok
        and response.status_code == 302
        and response["Location"].startswith("/admin/login/")
    )
