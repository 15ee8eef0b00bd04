"""What an import would change: a list of Change, computed without writing anything."""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from django.utils import timezone

from booking.manifest.errors import ManifestError, key_path
from booking.manifest.schema import Manifest, manifest_from_data
from booking.manifest.state import (
    ACCESS_CODE,
    KINDS,
    SECTIONS,
    State,
    db_states,
    show,
    shown,
    spec_state,
)
from booking.models import Booking
from booking.models.bookings import ACTIVE_STATUSES

Action = Literal["create", "update", "delete", "keep"]
SIGNS = {"create": "+", "update": "~", "delete": "-", "keep": "!"}
LABELS = {
    "relay": "relay",
    "ui": "UI",
    "ui_set": "UI set",
    "experiment": "experiment",
    "pool": "pool",
    "group": "group",
}
# Diff lines stay readable when a description changes; audit entries keep the whole text.
SHOW_LIMIT = 80

KEPT_BOOKED = "it has current or future bookings"
KEPT_PAST = "it has past bookings, which are never deleted"
NOTE_CODE = "a new access code is generated"


@dataclass(frozen=True)
class FieldChange:
    name: str
    old: Any
    new: Any

    def __str__(self) -> str:
        if self.name == ACCESS_CODE:
            return "access_code changed"
        old = show(self.name, self.old, limit=SHOW_LIMIT)
        new = show(self.name, self.new, limit=SHOW_LIMIT)
        return f"{self.name} {old} -> {new}"


@dataclass(frozen=True)
class Change:
    """One object the import creates, updates, deletes, or (pruning) has to keep."""

    action: Action
    kind: str
    key: str
    fields: tuple[FieldChange, ...] = ()
    # Why a pruned object is kept, or what else happens (a generated access code).
    note: str = ""
    before: State | None = field(default=None, repr=False, compare=False)
    after: State | None = field(default=None, repr=False, compare=False)

    @property
    def label(self) -> str:
        return f"{LABELS[self.kind]} {self.key}"

    def line(self) -> str:
        sign = SIGNS[self.action]
        if self.action == "update":
            return f"{sign} {self.label}: " + "; ".join(str(f) for f in self.fields)
        if self.action == "keep":
            return f"{sign} {self.label} kept: {self.note}"
        return f"{sign} {self.label}" + (f" ({self.note})" if self.note else "")

    def audit_before(self) -> dict | None:
        if self.action == "update":
            return {f.name: show(f.name, f.old, quote=False) for f in self.fields}
        return shown(self.before) if self.before is not None else None

    def audit_after(self) -> dict | None:
        if self.action == "update":
            return {f.name: show(f.name, f.new, quote=False) for f in self.fields}
        return shown(self.after) if self.after is not None else None


def as_manifest(manifest: Manifest | Mapping) -> Manifest:
    return manifest if isinstance(manifest, Manifest) else manifest_from_data(dict(manifest))


def manifest_plan(
    manifest: Manifest | Mapping,
    *,
    prune: bool = False,
    now: datetime | None = None,
    generate_access_codes: bool = True,
) -> list[Change]:
    """The changes an import of `manifest` would make, in the order they are applied.

    Raises ManifestError when the manifest names something that does not exist.
    """
    manifest = as_manifest(manifest)
    now = now or timezone.now()
    current = db_states()
    check_references(manifest, {kind: set(current[kind]) for kind in KINDS}, prune=prune)
    changes: list[Change] = []
    for kind in KINDS:
        for key, spec in sorted(_section(manifest, kind).items()):
            desired = spec_state(kind, spec)
            existing = current[kind].get(key)
            if existing is None:
                note = ""
                if kind == "group" and spec.access_code is None and generate_access_codes:
                    note = NOTE_CODE
                changes.append(Change("create", kind, key, note=note, after=desired))
                continue
            if ACCESS_CODE not in desired:
                existing = {k: v for k, v in existing.items() if k != ACCESS_CODE}
            fields = diff(existing, desired)
            if fields:
                changes.append(Change("update", kind, key, fields, before=existing, after=desired))
    if prune:
        changes.extend(_prune(manifest, current, now))
    return changes


def diff(old: State, new: State) -> tuple[FieldChange, ...]:
    names = list(old) + [name for name in new if name not in old]
    return tuple(
        FieldChange(name, old.get(name), new.get(name))
        for name in names
        if old.get(name) != new.get(name)
    )


def change_lines(changes: list[Change], access_codes: Mapping[str, str] | None = None) -> list[str]:
    """The diff as printed: one line per object; a generated access code right below its group."""
    lines = []
    for change in changes:
        lines.append(change.line())
        code = (access_codes or {}).get(change.key) if change.kind == "group" else None
        if code and change.action == "create":
            lines.append(f"  access code for group {change.key}: {code} (shown only this once)")
    return lines


# --- references ----------------------------------------------------------------------------


def check_references(manifest: Manifest, existing: Mapping[str, set[str]], *, prune: bool) -> None:
    """Every name must be in the manifest, or (when not pruning) already in the database."""
    for path, kind, key in _references(manifest):
        if key in _section(manifest, kind):
            continue
        if not prune and key in existing[kind]:
            continue
        where = (
            "not in the manifest (with --prune everything must be in it)"
            if prune
            else "neither in the manifest nor in the database"
        )
        raise ManifestError(path, f"unknown {LABELS[kind]} {key!r}: {where}")


def _references(manifest: Manifest) -> Iterator[tuple[str, str, str]]:
    for key, experiment in manifest.experiments.items():
        for name, stream in experiment.streams.items():
            yield f"experiments.{key}.streams.{name}.relay", "relay", stream.relay
    for key, uis in manifest.ui_sets.items():
        for index, ui in enumerate(uis):
            yield key_path(f"ui_sets.{key}", index), "ui", ui
    for key, pool in manifest.pools.items():
        for index, experiment in enumerate(pool.experiments):
            yield key_path(f"pools.{key}.experiments", index), "experiment", experiment
        if pool.ui_set is not None:
            yield f"pools.{key}.ui_set", "ui_set", pool.ui_set
    for key, group in manifest.groups.items():
        for index, pool in enumerate(group.pools):
            yield key_path(f"groups.{key}.pools", index), "pool", pool
        if group.ui_set is not None:
            yield f"groups.{key}.ui_set", "ui_set", group.ui_set


def _section(manifest: Manifest, kind: str) -> Mapping[str, Any]:
    return getattr(manifest, SECTIONS[kind])


# --- pruning -------------------------------------------------------------------------------


def _prune(
    manifest: Manifest, current: Mapping[str, Mapping[str, State]], now: datetime
) -> list[Change]:
    """Delete what the manifest leaves out, except what bookings (or kept objects) need."""
    unlisted = {kind: sorted(set(current[kind]) - set(_section(manifest, kind))) for kind in KINDS}
    kept: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
    for kind in ("experiment", "pool"):
        kept[kind] = _kept_for_bookings(kind, unlisted[kind], now)
    # What a kept object uses stays with it.
    for pool in kept["pool"]:
        ui_set = current["pool"][pool]["ui_set"]
        if ui_set in unlisted["ui_set"]:
            kept["ui_set"].setdefault(ui_set, f"the kept pool {pool} uses it")
    for ui_set in kept["ui_set"]:
        for ui in current["ui_set"][ui_set]["uis"]:
            if ui in unlisted["ui"]:
                kept["ui"].setdefault(ui, f"the kept UI set {ui_set} uses it")
    for experiment in kept["experiment"]:
        for name, value in current["experiment"][experiment].items():
            if name.startswith("streams.") and value[0] in unlisted["relay"]:
                kept["relay"].setdefault(value[0], f"the kept experiment {experiment} uses it")
    changes = []
    for kind in reversed(KINDS):
        for key in unlisted[kind]:
            if key in kept[kind]:
                changes.append(Change("keep", kind, key, note=kept[kind][key]))
            else:
                changes.append(Change("delete", kind, key, before=current[kind][key]))
    return changes


def _kept_for_bookings(kind: str, keys: list[str], now: datetime) -> dict[str, str]:
    if not keys:
        return {}
    slug = f"{kind}__slug"
    bookings = Booking.objects.filter(**{f"{slug}__in": keys})
    booked = set(
        bookings.filter(status__in=ACTIVE_STATUSES, end__gt=now).values_list(slug, flat=True)
    )
    # Bookings are never deleted, and each one holds on to its pool and experiment.
    past = set(bookings.values_list(slug, flat=True)) - booked
    return {key: KEPT_BOOKED for key in booked} | {key: KEPT_PAST for key in past}
