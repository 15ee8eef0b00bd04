"""import_manifest / export_manifest: diffs, idempotence, pruning, validation, secrecy."""

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from booking.manifest import Change, load_manifest, manifest_apply, manifest_export, manifest_plan
from booking.models import (
    UI,
    AuditEntry,
    Booking,
    Experiment,
    Group,
    Pool,
    Relay,
    Stream,
    UISet,
    Window,
)
from booking.services.groups import access_code_hash

BASE = """
relays:
  relay-a: {access_url: "https://relay.example.org/access", algorithm: HS256,
            secret_env: RELAY_A_SECRET}
experiments:
  pend00:
    title: Pendulum 00
    topic_stub: pend00
    streams:
      data: {relay: relay-a, scopes: [read, write]}
      video: {relay: relay-a, scopes: [read]}
  pend01:
    title: Pendulum 01
    streams:
      data: {relay: relay-a, scopes: [read, write]}
uis:
  pend-ui: {title: Pendulum UI, url: "https://ui.example.org/p/?s={{session}}",
            streams: [data, video]}
ui_sets:
  pend: [pend-ui]
pools:
  pendulums:
    title: Pendulums
    experiments: [pend00, pend01]
    ui_set: pend
    policy: {min_duration: 5m, max_duration: 30m, book_ahead: 7d, start_in_past: 2m,
             max_bookings: 2, quota: {period: 7d, limit: 2h}, grace_period: 5m,
             extend_step: 5m, max_extension: 15m}
    windows:
      allowed: [{start: "2026-01-01T00:00:00Z", end: "2027-01-01T00:00:00Z"}]
      denied: []
groups:
  course-x:
    title: Course X
    pools: [pendulums]
    access_code: COURSE-X-JOIN-1
"""

BASE_CREATED = [
    "+ relay relay-a",
    "+ UI pend-ui",
    "+ UI set pend",
    "+ experiment pend00",
    "+ experiment pend01",
    "+ pool pendulums",
    "+ group course-x",
]
MODELS = (Relay, Experiment, Stream, UI, UISet, Pool, Window, Group, Booking, AuditEntry)


def variant(mutate: Callable[[dict], None] | None = None) -> str:
    data = yaml.safe_load(BASE)
    if mutate is not None:
        mutate(data)
    return yaml.safe_dump(data, sort_keys=False)


def write(tmp_path: Path, text: str, name: str = "lab.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def run_import(tmp_path: Path, text: str, *flags: str) -> str:
    out = StringIO()
    call_command("import_manifest", write(tmp_path, text), *flags, stdout=out, stderr=StringIO())
    return out.getvalue()


def lines(output: str) -> list[str]:
    return output.splitlines()


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def book(experiment: str, pool: str, *, start: datetime, end: datetime, status: str, ref: str):
    user, _ = User.objects.get_or_create(username="booker", defaults={"last_name": "Booker"})
    return Booking.objects.create(
        user=user,
        pool=Pool.objects.get(slug=pool),
        experiment=Experiment.objects.get(slug=experiment),
        start=start,
        end=end,
        booked_end=end,
        status=status,
        created_at=start - timedelta(days=1),
        reference=ref,
    )


# --- creating, updating, doing nothing ---------------------------------------------------


@pytest.mark.django_db
def test_it_creates_the_catalogue_and_prints_one_line_per_object(tmp_path):
    output = run_import(tmp_path, BASE)

    assert lines(output) == BASE_CREATED
    pool = Pool.objects.get(slug="pendulums")
    assert (pool.max_duration, pool.max_extension) == (1800, 900)
    assert (pool.quota_period, pool.quota_limit) == (7 * 86400, 2 * 3600)
    assert sorted(pool.experiments.values_list("slug", flat=True)) == ["pend00", "pend01"]
    assert pool.ui_set.slug == "pend"
    window = pool.windows.get()
    assert (window.kind, window.start, window.end) == (
        "allowed",
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    streams = Stream.objects.filter(experiment__slug="pend00").order_by("name")
    assert [(s.name, s.relay.slug, s.scopes) for s in streams] == [
        ("data", "relay-a", ["read", "write"]),
        ("video", "relay-a", ["read"]),
    ]
    assert Experiment.objects.get(slug="pend01").topic_stub == "pend01"
    assert Relay.objects.get(slug="relay-a").secret_env == "RELAY_A_SECRET"


@pytest.mark.django_db
def test_a_second_import_of_the_same_file_prints_nothing_and_writes_nothing(tmp_path):
    run_import(tmp_path, BASE)
    before = counts()

    assert run_import(tmp_path, BASE) == ""
    assert counts() == before


@pytest.mark.django_db
def test_an_update_prints_each_changed_field_with_old_and_new_value(tmp_path):
    run_import(tmp_path, BASE)

    def change(data: dict) -> None:
        data["pools"]["pendulums"]["policy"]["max_duration"] = "45m"
        data["pools"]["pendulums"]["title"] = "Swinging things"
        data["experiments"]["pend00"]["streams"]["video"]["scopes"] = ["read", "write"]
        del data["experiments"]["pend01"]["streams"]["data"]

    output = run_import(tmp_path, variant(change))

    assert lines(output) == [
        "~ experiment pend00: streams.video relay-a [read] -> relay-a [read, write]",
        "~ experiment pend01: streams.data relay-a [read, write] -> none",
        '~ pool pendulums: title Pendulums -> "Swinging things"; max_duration 30m -> 45m',
    ]
    assert Pool.objects.get(slug="pendulums").max_duration == 45 * 60
    assert not Stream.objects.filter(experiment__slug="pend01").exists()


@pytest.mark.django_db
def test_each_applied_change_is_audited_as_the_manifest(tmp_path):
    run_import(tmp_path, BASE)
    created = AuditEntry.objects.filter(action="manifest.create")
    assert created.count() == len(BASE_CREATED)
    assert set(created.values_list("actor_label", flat=True)) == {"manifest"}

    run_import(tmp_path, BASE.replace("max_duration: 30m", "max_duration: 45m"))

    entry = AuditEntry.objects.get(action="manifest.update")
    assert (entry.object_type, entry.object_repr) == ("booking.pool", "pendulums")
    assert (entry.before, entry.after) == ({"max_duration": "30m"}, {"max_duration": "45m"})


@pytest.mark.django_db
def test_policy_keys_left_out_take_the_defaults(tmp_path):
    def bare(data: dict) -> None:
        data["pools"]["pendulums"]["policy"] = {"max_duration": "45m"}
        data["pools"]["others"] = {"title": "Others", "experiments": ["pend01"]}

    run_import(tmp_path, variant(bare))

    for slug, max_duration in (("pendulums", 2700), ("others", 3600)):
        pool = Pool.objects.get(slug=slug)
        assert (
            pool.min_duration,
            pool.max_duration,
            pool.book_ahead,
            pool.start_in_past,
            pool.max_bookings,
            pool.grace_period,
            pool.extend_step,
            pool.max_extension,
        ) == (300, max_duration, 7 * 86400, 120, 2, 600, 300, 0)
        assert (pool.quota_period, pool.quota_limit) == (None, None)


@pytest.mark.django_db
def test_a_quota_left_out_on_reimport_removes_it(tmp_path):
    run_import(tmp_path, BASE)

    output = run_import(tmp_path, variant(lambda d: d["pools"]["pendulums"]["policy"].pop("quota")))

    assert lines(output) == ["~ pool pendulums: quota 2h per 7d -> none"]
    assert Pool.objects.get(slug="pendulums").quota_period is None


@pytest.mark.django_db
def test_times_with_any_offset_are_stored_in_utc(tmp_path):
    def shifted(data: dict) -> None:
        data["pools"]["pendulums"]["windows"] = {
            "denied": [{"start": "2026-05-01T10:00:00+02:00", "end": "2026-05-01T12:00:00+02:00"}]
        }

    run_import(tmp_path, variant(shifted))

    window = Window.objects.get(pool__slug="pendulums")
    assert (window.kind, window.start, window.end) == (
        "denied",
        datetime(2026, 5, 1, 8, tzinfo=UTC),
        datetime(2026, 5, 1, 10, tzinfo=UTC),
    )


# --- dry run ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_dry_run_prints_the_diff_and_changes_nothing(tmp_path):
    before = counts()

    output = run_import(tmp_path, BASE, "--dry-run")

    assert lines(output) == BASE_CREATED
    assert counts() == before


@pytest.mark.django_db
def test_dry_run_of_an_update_and_a_prune_changes_nothing(tmp_path):
    run_import(tmp_path, BASE)
    run_import(tmp_path, "groups: {old: {title: Old, access_code: OLD-CODE-123}}")
    before = counts()

    output = run_import(
        tmp_path, BASE.replace("max_duration: 30m", "max_duration: 45m"), "--dry-run", "--prune"
    )

    assert lines(output) == ["~ pool pendulums: max_duration 30m -> 45m", "- group old"]
    assert counts() == before
    assert Pool.objects.get(slug="pendulums").max_duration == 1800
    assert Group.objects.filter(slug="old").exists()


# --- pruning -------------------------------------------------------------------------------


SHRUNK = (
    "~ pool pendulums: experiments [pend00, pend01, pend07, pend08, pend09] -> [pend00, pend01]"
)


def _with_extras(data: dict) -> None:
    data["experiments"]["pend09"] = {"title": "Pendulum 09"}
    data["experiments"]["pend08"] = {"title": "Pendulum 08"}
    data["experiments"]["pend07"] = {"title": "Pendulum 07"}
    data["pools"]["pendulums"]["experiments"] += ["pend09", "pend08", "pend07"]
    data["uis"]["old-ui"] = {"title": "Old UI", "url": "https://ui.example.org/old/"}
    data["groups"]["old"] = {"title": "Old course", "pools": ["pendulums"]}


@pytest.mark.django_db
def test_without_prune_what_the_file_leaves_out_stays(tmp_path):
    run_import(tmp_path, variant(_with_extras))

    output = run_import(tmp_path, BASE)

    assert lines(output) == [SHRUNK]
    assert Group.objects.filter(slug="old").exists()
    assert UI.objects.filter(slug="old-ui").exists()
    assert Experiment.objects.filter(slug="pend09").exists()


@pytest.mark.django_db
def test_prune_deletes_what_the_file_leaves_out_but_keeps_booked_experiments(tmp_path):
    run_import(tmp_path, variant(_with_extras))
    now = timezone.now()
    future = book(
        "pend09",
        "pendulums",
        start=now + timedelta(days=1),
        end=now + timedelta(days=1, minutes=30),
        status="booked",
        ref="FUT234",
    )
    book(
        "pend08",
        "pendulums",
        start=now - timedelta(days=3),
        end=now - timedelta(days=3) + timedelta(minutes=30),
        status="ended",
        ref="PST234",
    )

    output = run_import(tmp_path, BASE, "--prune")

    assert lines(output) == [
        SHRUNK,
        "- group old",
        "- experiment pend07",
        "! experiment pend08 kept: it has past bookings, which are never deleted",
        "! experiment pend09 kept: it has current or future bookings",
        "- UI old-ui",
    ]
    assert not Group.objects.filter(slug="old").exists()
    assert not UI.objects.filter(slug="old-ui").exists()
    assert not Experiment.objects.filter(slug="pend07").exists()
    assert set(Experiment.objects.values_list("slug", flat=True)) == {
        "pend00",
        "pend01",
        "pend08",
        "pend09",
    }
    assert Booking.objects.filter(pk=future.pk, status="booked").exists()
    assert Booking.objects.count() == 2
    deleted = AuditEntry.objects.filter(action="manifest.delete")
    assert sorted(deleted.values_list("object_repr", flat=True)) == ["old", "old-ui", "pend07"]


@pytest.mark.django_db
def test_prune_keeps_a_pool_with_a_running_booking_and_what_it_uses(tmp_path):
    def second_pool(data: dict) -> None:
        data["relays"]["relay-b"] = {
            "access_url": "https://relay-b.example.org/access",
            "secret_file": "/run/secrets/relay-b",
        }
        data["experiments"]["spin00"] = {
            "title": "Spinner",
            "streams": {"data": {"relay": "relay-b", "scopes": ["read"]}},
        }
        data["ui_sets"]["spin"] = ["pend-ui"]
        data["pools"]["spinners"] = {
            "title": "Spinners",
            "experiments": ["spin00"],
            "ui_set": "spin",
        }

    run_import(tmp_path, variant(second_pool))
    now = timezone.now()
    book(
        "spin00",
        "spinners",
        start=now - timedelta(minutes=10),
        end=now + timedelta(minutes=20),
        status="started",
        ref="RUN234",
    )

    output = run_import(tmp_path, BASE, "--prune")

    assert lines(output) == [
        "! pool spinners kept: it has current or future bookings",
        "! experiment spin00 kept: it has current or future bookings",
        "! UI set spin kept: the kept pool spinners uses it",
        "! relay relay-b kept: the kept experiment spin00 uses it",
    ]
    assert Pool.objects.get(slug="spinners").ui_set.slug == "spin"
    assert Stream.objects.get(experiment__slug="spin00").relay.slug == "relay-b"


@pytest.mark.django_db
def test_prune_requires_everything_named_to_be_in_the_file(tmp_path):
    run_import(tmp_path, BASE)
    before = counts()
    partial = "groups: {course-y: {title: Course Y, pools: [pendulums]}}"

    with pytest.raises(CommandError, match=r"groups\.course-y\.pools\[0\]: unknown pool"):
        run_import(tmp_path, partial, "--prune")
    assert counts() == before


# --- invalid files ---------------------------------------------------------------------------


def _set(path: str, value: object) -> Callable[[dict], None]:
    def mutate(data: dict) -> None:
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        node[last] = value

    return mutate


INVALID = [
    ("unknown top-level key", _set("colour", "red"), "colour: unknown key"),
    (
        "unknown key",
        _set("experiments.pend00.colour", "red"),
        "experiments.pend00.colour: unknown key",
    ),
    (
        "wrong type: number",
        _set("pools.pendulums.policy.max_bookings", "two"),
        "pools.pendulums.policy.max_bookings: expected a whole number",
    ),
    (
        "wrong type: boolean",
        _set("experiments.pend00.public", "yes please"),
        "experiments.pend00.public: expected true or false",
    ),
    (
        "wrong type: section",
        _set("relays", ["relay-a"]),
        "relays: expected a mapping",
    ),
    (
        "stream naming an unknown relay",
        _set("experiments.pend00.streams.data.relay", "relay-z"),
        "experiments.pend00.streams.data.relay: unknown relay 'relay-z'",
    ),
    (
        "pool naming an unknown experiment",
        _set("pools.pendulums.experiments", ["pend00", "pend99"]),
        r"pools.pendulums.experiments[1]: unknown experiment 'pend99'",
    ),
    (
        "group naming an unknown pool",
        _set("groups.course-x.pools", ["nowhere"]),
        "groups.course-x.pools[0]: unknown pool 'nowhere'",
    ),
    (
        "naive time",
        _set(
            "pools.pendulums.windows.allowed",
            [{"start": "2026-01-01T00:00:00", "end": "2027-01-01T00:00:00Z"}],
        ),
        "pools.pendulums.windows.allowed[0].start: the time '2026-01-01T00:00:00' has no offset",
    ),
    (
        "window ending before it starts",
        _set(
            "pools.pendulums.windows.denied",
            [{"start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}],
        ),
        "pools.pendulums.windows.denied[0].end: must be after start",
    ),
    (
        "bad duration",
        _set("pools.pendulums.policy.book_ahead", "3w"),
        "pools.pendulums.policy.book_ahead: not a duration",
    ),
    (
        "min longer than max",
        _set("pools.pendulums.policy.min_duration", "2h"),
        "pools.pendulums.policy.min_duration: min_duration 2h is longer than max_duration 30m",
    ),
    (
        "quota without limit",
        _set("pools.pendulums.policy.quota", {"period": "7d"}),
        "pools.pendulums.policy.quota.limit: required key is missing",
    ),
    (
        "missing title",
        _set("groups.course-x", {"pools": ["pendulums"]}),
        "groups.course-x.title: required key is missing",
    ),
    (
        "key that is not a slug",
        _set("experiments.Pend 00", {"title": "Pendulum"}),
        "experiments.Pend 00: a key in experiments must be lower-case letters",
    ),
    (
        "HS256 relay without a secret",
        _set("relays.relay-a", {"access_url": "https://relay.example.org/access"}),
        "relays.relay-a: an HS256 relay needs secret_env or secret_file",
    ),
    (
        "short access code",
        _set("groups.course-x.access_code", "abc"),
        "groups.course-x.access_code: too short",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("mutate", "message"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID]
)
def test_an_invalid_file_fails_naming_the_key_and_writes_nothing(tmp_path, mutate, message):
    before = counts()

    with pytest.raises(CommandError) as failure:
        run_import(tmp_path, variant(mutate))

    assert message in str(failure.value)
    assert counts() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pools: {pendulums: [", "not valid YAML"),
        ("pools:\n  p: {title: P}\n  p: {title: Q}\n", "the key 'p' is given twice"),
        (
            "pools:\n  p:\n    title: P\n    windows:\n"
            "      allowed: [{start: 2026-01-01 10:00:00, end: 2026-02-01T00:00:00Z}]\n",
            "pools.p.windows.allowed[0].start: the time '2026-01-01 10:00:00' has no offset",
        ),
        ("", "the manifest is empty"),
        ("- a\n- b\n", "expected a mapping"),
    ],
    ids=["broken yaml", "repeated key", "unquoted naive time", "empty", "a list"],
)
def test_a_file_that_is_not_a_manifest_fails_clearly(tmp_path, text, message):
    with pytest.raises(CommandError) as failure:
        run_import(tmp_path, text)

    assert message in str(failure.value)
    assert Pool.objects.count() == 0


@pytest.mark.django_db
def test_an_invalid_file_leaves_an_existing_catalogue_untouched(tmp_path):
    run_import(tmp_path, BASE)
    before = counts()

    def partly_valid(data: dict) -> None:
        data["pools"]["pendulums"]["title"] = "Renamed"
        data["groups"]["course-x"]["pools"] = ["pendulums", "nowhere"]

    with pytest.raises(CommandError, match=r"groups\.course-x\.pools\[1\]"):
        run_import(tmp_path, variant(partly_valid))

    assert Pool.objects.get(slug="pendulums").title == "Pendulums"
    assert counts() == before


@pytest.mark.django_db
def test_a_missing_file_fails_with_a_command_error(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_manifest", str(tmp_path / "nope.yaml"), stdout=StringIO())


# --- access codes --------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_import_without_access_code_keeps_the_groups_code(tmp_path):
    run_import(tmp_path, BASE)

    output = run_import(tmp_path, variant(lambda d: d["groups"]["course-x"].pop("access_code")))

    assert output == ""
    group = Group.objects.get(slug="course-x")
    assert group.access_code_hash == access_code_hash("COURSE-X-JOIN-1")


@pytest.mark.django_db
def test_a_changed_access_code_is_reported_but_never_printed(tmp_path):
    run_import(tmp_path, BASE)

    output = run_import(tmp_path, BASE.replace("COURSE-X-JOIN-1", "COURSE-X-JOIN-2"))

    assert lines(output) == ["~ group course-x: access_code changed"]
    assert "COURSE-X-JOIN" not in output
    group = Group.objects.get(slug="course-x")
    assert group.access_code_hash == access_code_hash("COURSE-X-JOIN-2")


@pytest.mark.django_db
def test_a_new_group_without_code_gets_one_printed_only_once(tmp_path):
    text = variant(lambda d: d["groups"]["course-x"].pop("access_code"))

    first = run_import(tmp_path, text)

    match = re.search(
        r"^  access code for group course-x: (\S+) \(shown only this once\)$", first, re.M
    )
    assert match is not None
    assert lines(first)[-2] == "+ group course-x (a new access code is generated)"
    code = match.group(1)
    assert len(code) >= 16
    assert Group.objects.get(slug="course-x").access_code_hash == access_code_hash(code)
    second = run_import(tmp_path, text)
    assert second == ""
    assert Group.objects.get(slug="course-x").access_code_hash == access_code_hash(code)


@pytest.mark.django_db
def test_dry_run_of_a_new_group_generates_no_code(tmp_path):
    text = variant(lambda d: d["groups"]["course-x"].pop("access_code"))

    output = run_import(tmp_path, text, "--dry-run")

    assert "+ group course-x (a new access code is generated)" in lines(output)
    assert "access code for group" not in output
    assert not Group.objects.exists()


# --- export ----------------------------------------------------------------------------------


def run_export() -> str:
    out = StringIO()
    call_command("export_manifest", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_export_never_contains_an_access_code_or_a_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("RELAY_A_SECRET", "hs256-secret-value-4711")
    run_import(tmp_path, BASE)
    generated = run_import(tmp_path, "groups: {course-y: {title: Course Y}}")
    code = re.search(r"course-y: (\S+)", generated).group(1)

    exported = run_export()

    assert "RELAY_A_SECRET" in exported
    for secret in (
        "hs256-secret-value-4711",
        "COURSE-X-JOIN-1",
        code,
        access_code_hash("COURSE-X-JOIN-1"),
        "access_code",
    ):
        assert secret not in exported


@pytest.mark.django_db
def test_export_formats_durations_and_utc_times_in_the_manifest_shape(tmp_path):
    run_import(
        tmp_path,
        BASE.replace('"2026-01-01T00:00:00Z"', '"2026-01-01T01:00:00+01:00"'),
    )

    data = manifest_export()

    pool = data["pools"]["pendulums"]
    assert pool["policy"] == {
        "min_duration": "5m",
        "max_duration": "30m",
        "book_ahead": "7d",
        "start_in_past": "2m",
        "max_bookings": 2,
        "grace_period": "5m",
        "extend_step": "5m",
        "max_extension": "15m",
        "quota": {"period": "7d", "limit": "2h"},
    }
    assert pool["windows"] == {
        "allowed": [{"start": "2026-01-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"}],
        "denied": [],
    }
    assert data["experiments"]["pend00"]["streams"]["video"] == {
        "relay": "relay-a",
        "scopes": ["read"],
    }
    assert data["groups"]["course-x"] == {"title": "Course X", "pools": ["pendulums"]}


@pytest.mark.django_db
def test_export_then_import_changes_nothing(tmp_path):
    run_import(tmp_path, BASE)
    # Objects made in the admin, with values the manifest file above does not use.
    relay = Relay.objects.create(
        slug="relay-b",
        access_url="https://relay-b.example.org/access",
        audience="relay-b-audience",
        algorithm="EdDSA",
        secret_file="",
        push_enabled=False,
    )
    experiment = Experiment.objects.create(
        slug="truss00",
        title="Truss: the big one",
        description="Strain gauges,\nseveral lines.",
        topic_stub="Truss00",
        public=False,
        available=False,
        unavailable_reason="Being recalibrated",
    )
    Stream.objects.create(experiment=experiment, name="Data", relay=relay, scopes=["read"])
    pool = Pool.objects.create(slug="odd", title="Odd", min_duration=90, max_duration=5400)
    pool.experiments.set([experiment])
    Window.objects.create(
        pool=pool,
        kind="denied",
        start=datetime(2026, 6, 1, 12, 30, 15, tzinfo=UTC),
        end=datetime(2026, 6, 2, tzinfo=UTC),
    )
    output_file = tmp_path / "export.yaml"
    call_command("export_manifest", "--output", str(output_file), stdout=StringIO())
    before = counts()

    assert run_import(tmp_path, output_file.read_text(), "--prune") == ""
    assert counts() == before
    assert manifest_plan(load_manifest(output_file.read_text()), prune=True) == []


# --- the functions an admin upload calls ---------------------------------------------------


@pytest.mark.django_db
def test_plan_and_apply_work_without_the_command():
    manifest = load_manifest(BASE)

    planned = manifest_plan(manifest)

    assert [(c.action, c.kind, c.key) for c in planned] == [
        ("create", "relay", "relay-a"),
        ("create", "ui", "pend-ui"),
        ("create", "ui_set", "pend"),
        ("create", "experiment", "pend00"),
        ("create", "experiment", "pend01"),
        ("create", "pool", "pendulums"),
        ("create", "group", "course-x"),
    ]
    assert not Pool.objects.exists()
    staff = User.objects.create_user("manager", last_name="Manager")
    result = manifest_apply(manifest, now=timezone.now(), actor=staff)
    assert result.lines() == BASE_CREATED
    assert all(isinstance(change, Change) for change in result.changes)
    assert AuditEntry.objects.filter(action="manifest.create", actor=staff).count() == 7
    assert manifest_plan(yaml.safe_load(BASE)) == []
