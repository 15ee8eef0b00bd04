"""The whole catalogue as a manifest: importing it again into the same database changes nothing.

Never holds a secret or an access code: relays carry only the names of where their secret
lives (secret_env, secret_file), groups no code at all.
"""

from typing import Any

from booking.manifest.schema import POLICY_DEFAULTS
from booking.manifest.state import iso_utc
from booking.manifest.yamlio import FlowMap, dump_yaml
from booking.models import UI, Experiment, Group, Pool, Relay, UISet, WindowKind
from booking.rules import format_duration


def manifest_export() -> dict[str, Any]:
    """The catalogue in the manifest's shape (plain dicts, lists and strings)."""
    return {
        "relays": {relay.slug: _relay(relay) for relay in Relay.objects.all()},
        "experiments": {
            experiment.slug: _experiment(experiment)
            for experiment in Experiment.objects.prefetch_related("streams__relay")
        },
        "uis": {ui.slug: _ui(ui) for ui in UI.objects.all()},
        "ui_sets": {
            ui_set.slug: sorted(ui.slug for ui in ui_set.uis.all())
            for ui_set in UISet.objects.prefetch_related("uis")
        },
        "pools": {
            pool.slug: _pool(pool)
            for pool in Pool.objects.select_related("ui_set").prefetch_related(
                "experiments", "windows"
            )
        },
        "groups": {
            group.slug: _group(group)
            for group in Group.objects.select_related("ui_set").prefetch_related("pools")
        },
    }


def manifest_dump(data: dict[str, Any]) -> str:
    """A manifest (such as manifest_export's) as YAML text."""
    return dump_yaml(data)


def _relay(relay: Relay) -> dict[str, Any]:
    out: dict[str, Any] = {"access_url": relay.access_url, "algorithm": relay.algorithm}
    for name in ("audience", "secret_env", "secret_file"):
        if getattr(relay, name):
            out[name] = getattr(relay, name)
    if not relay.push_enabled:
        out["push_enabled"] = False
    return out


def _experiment(experiment: Experiment) -> dict[str, Any]:
    out: dict[str, Any] = {"title": experiment.title}
    if experiment.description:
        out["description"] = experiment.description
    out.update(
        topic_stub=experiment.topic_stub,
        public=experiment.public,
        available=experiment.available,
    )
    if experiment.unavailable_reason:
        out["unavailable_reason"] = experiment.unavailable_reason
    streams = sorted(experiment.streams.all(), key=lambda s: s.name)
    if streams:
        out["streams"] = {
            s.name: FlowMap(relay=s.relay.slug, scopes=list(s.scopes)) for s in streams
        }
    return out


def _ui(ui: UI) -> dict[str, Any]:
    out: dict[str, Any] = {"title": ui.title, "url": ui.url}
    if ui.streams:
        out["streams"] = list(ui.streams)
    return out


def _pool(pool: Pool) -> dict[str, Any]:
    out: dict[str, Any] = {"title": pool.title}
    if pool.description:
        out["description"] = pool.description
    out["experiments"] = sorted(e.slug for e in pool.experiments.all())
    if pool.ui_set:
        out["ui_set"] = pool.ui_set.slug
    policy: dict[str, Any] = {}
    for name in POLICY_DEFAULTS:
        value = getattr(pool, name)
        policy[name] = value if name == "max_bookings" else format_duration(value)
    if pool.quota_period and pool.quota_limit is not None:
        policy["quota"] = FlowMap(
            period=format_duration(pool.quota_period), limit=format_duration(pool.quota_limit)
        )
    out["policy"] = policy
    windows = sorted(pool.windows.all(), key=lambda w: (w.start, w.end))
    if windows:
        out["windows"] = {
            kind: [
                FlowMap(start=iso_utc(w.start), end=iso_utc(w.end))
                for w in windows
                if w.kind == kind
            ]
            for kind in WindowKind.values
        }
    return out


def _group(group: Group) -> dict[str, Any]:
    out: dict[str, Any] = {
        "title": group.title,
        "pools": sorted(pool.slug for pool in group.pools.all()),
    }
    if group.ui_set:
        out["ui_set"] = group.ui_set.slug
    return out
