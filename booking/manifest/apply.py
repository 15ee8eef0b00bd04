"""Applying a manifest: the plan, carried out in one transaction, each change audited."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import models, transaction

from booking.audit import audit_record
from booking.manifest.plan import Change, as_manifest, change_lines, manifest_plan
from booking.manifest.schema import (
    ExperimentSpec,
    GroupSpec,
    Manifest,
    PoolSpec,
    RelaySpec,
    UISpec,
)
from booking.manifest.state import MODELS, POLICY_KEYS, SECTIONS
from booking.models import UI, Experiment, Group, Pool, Relay, Stream, UISet, Window, WindowKind
from booking.services.groups import access_code_hash, group_access_code_rotate

ACTOR_LABEL = "manifest"
KEPT_REFERRED = "other records still refer to it"


@dataclass
class ManifestResult:
    changes: list[Change]
    # Access codes generated for new groups, by group key: shown once, stored only as hashes.
    access_codes: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        return change_lines(self.changes, self.access_codes)


@dataclass
class _Run:
    now: datetime
    actor: AbstractBaseUser | None
    generate_access_codes: bool
    access_codes: dict[str, str] = field(default_factory=dict)


def manifest_apply(
    manifest: Manifest | Mapping,
    *,
    now: datetime,
    prune: bool = False,
    actor: AbstractBaseUser | None = None,
    generate_access_codes: bool = True,
) -> ManifestResult:
    """Create and update what the manifest names (and, pruning, delete what it leaves out).

    All or nothing: raises ManifestError (and writes nothing) when the manifest names
    something that does not exist. `actor` is the user behind an upload, if any.
    """
    manifest = as_manifest(manifest)
    run = _Run(now=now, actor=actor, generate_access_codes=generate_access_codes)
    with transaction.atomic():
        planned = manifest_plan(
            manifest, prune=prune, now=now, generate_access_codes=generate_access_codes
        )
        done = []
        for change in planned:
            if change.action in ("create", "update"):
                spec = getattr(manifest, SECTIONS[change.kind])[change.key]
                obj = WRITERS[change.kind](change.key, spec, run)
                _audit(change, obj, run)
            elif change.action == "delete":
                change = _delete(change, run)
            done.append(change)
    return ManifestResult(done, run.access_codes)


def _audit(change: Change, obj: models.Model, run: _Run) -> None:
    audit_record(
        at=run.now,
        actor=run.actor,
        actor_label=ACTOR_LABEL,
        action=f"manifest.{change.action}",
        obj=obj,
        before=change.audit_before(),
        after=change.audit_after(),
    )


def _delete(change: Change, run: _Run) -> Change:
    obj = MODELS[change.kind].objects.get(slug=change.key)
    try:
        with transaction.atomic():
            _audit(change, obj, run)
            obj.delete()
    except (models.ProtectedError, models.RestrictedError):
        return Change("keep", change.kind, change.key, note=KEPT_REFERRED)
    return change


def _upsert(model: type[models.Model], key: str, **values: Any) -> tuple[Any, bool]:
    obj = model.objects.filter(slug=key).first()
    created = obj is None
    if created:
        obj = model(slug=key)
    for name, value in values.items():
        setattr(obj, name, value)
    obj.save()
    return obj, created


def _write_relay(key: str, spec: RelaySpec, run: _Run) -> Relay:
    relay, _ = _upsert(
        Relay,
        key,
        access_url=spec.access_url,
        audience=spec.audience,
        algorithm=spec.algorithm,
        secret_env=spec.secret_env,
        secret_file=spec.secret_file,
        push_enabled=spec.push_enabled,
    )
    return relay


def _write_ui(key: str, spec: UISpec, run: _Run) -> UI:
    ui, _ = _upsert(UI, key, title=spec.title, url=spec.url, streams=list(spec.streams))
    return ui


def _write_ui_set(key: str, uis: tuple[str, ...], run: _Run) -> UISet:
    ui_set, _ = _upsert(UISet, key)
    ui_set.uis.set(UI.objects.filter(slug__in=uis))
    return ui_set


def _write_experiment(key: str, spec: ExperimentSpec, run: _Run) -> Experiment:
    experiment, _ = _upsert(
        Experiment,
        key,
        title=spec.title,
        description=spec.description,
        topic_stub=spec.topic_stub,
        public=spec.public,
        available=spec.available,
        unavailable_reason=spec.unavailable_reason,
    )
    relays = Relay.objects.in_bulk([s.relay for s in spec.streams.values()], field_name="slug")
    existing = {stream.name: stream for stream in experiment.streams.all()}
    for name, stream in existing.items():
        if name not in spec.streams:
            stream.delete()
    for name, stream_spec in spec.streams.items():
        stream = existing.get(name) or Stream(experiment=experiment, name=name)
        stream.relay = relays[stream_spec.relay]
        stream.scopes = list(stream_spec.scopes)
        stream.save()
    return experiment


def _write_pool(key: str, spec: PoolSpec, run: _Run) -> Pool:
    policy = {name: getattr(spec.policy, name) for name in POLICY_KEYS}
    pool, _ = _upsert(
        Pool,
        key,
        title=spec.title,
        description=spec.description,
        ui_set=UISet.objects.get(slug=spec.ui_set) if spec.ui_set else None,
        quota_period=spec.policy.quota_period,
        quota_limit=spec.policy.quota_limit,
        **policy,
    )
    pool.experiments.set(Experiment.objects.filter(slug__in=spec.experiments))
    desired = {(WindowKind.ALLOWED.value, s, e) for s, e in spec.allowed} | {
        (WindowKind.DENIED.value, s, e) for s, e in spec.denied
    }
    for window in pool.windows.all():
        if (window.kind, window.start, window.end) in desired:
            desired.discard((window.kind, window.start, window.end))
        else:
            window.delete()
    Window.objects.bulk_create(
        Window(pool=pool, kind=kind, start=start, end=end) for kind, start, end in sorted(desired)
    )
    return pool


def _write_group(key: str, spec: GroupSpec, run: _Run) -> Group:
    group, created = _upsert(
        Group,
        key,
        title=spec.title,
        ui_set=UISet.objects.get(slug=spec.ui_set) if spec.ui_set else None,
    )
    group.pools.set(Pool.objects.filter(slug__in=spec.pools))
    if spec.access_code is not None:
        if group.access_code_hash != access_code_hash(spec.access_code):
            group_access_code_rotate(group=group, now=run.now, by=run.actor, code=spec.access_code)
    elif created and run.generate_access_codes:
        run.access_codes[key] = group_access_code_rotate(group=group, now=run.now, by=run.actor)
    return group


WRITERS: dict[str, Callable[[str, Any, _Run], models.Model]] = {
    "relay": _write_relay,
    "ui": _write_ui,
    "ui_set": _write_ui_set,
    "experiment": _write_experiment,
    "pool": _write_pool,
    "group": _write_group,
}
