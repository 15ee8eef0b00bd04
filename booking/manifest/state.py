"""One flat, comparable picture of each catalogue object, from the database or from a spec.

Both sides produce the same keys and value types, so a diff is a comparison of two dicts.
Lists that have no order in the database (a pool's experiments) are sorted; a stream is one
key per stream name (`streams.data`), so that adding or dropping one reads as one field.
"""

import json
import re
from datetime import UTC, datetime
from typing import Any

from booking.manifest.schema import (
    DURATION_KEYS,
    ExperimentSpec,
    GroupSpec,
    PoolSpec,
    RelaySpec,
    UISpec,
)
from booking.models import UI, Experiment, Group, Pool, Relay, UISet, WindowKind
from booking.rules import format_duration
from booking.services.groups import access_code_hash

State = dict[str, Any]

# The order in which objects are created and updated (what others refer to comes first);
# deletions run the other way round.
KINDS = ("relay", "ui", "ui_set", "experiment", "pool", "group")
SECTIONS = {
    "relay": "relays",
    "ui": "uis",
    "ui_set": "ui_sets",
    "experiment": "experiments",
    "pool": "pools",
    "group": "groups",
}
MODELS = {
    "relay": Relay,
    "ui": UI,
    "ui_set": UISet,
    "experiment": Experiment,
    "pool": Pool,
    "group": Group,
}
ACCESS_CODE = "access_code"
POLICY_KEYS = (*DURATION_KEYS, "max_bookings")


def db_states() -> dict[str, dict[str, State]]:
    """Every catalogue object in the database, by kind and key."""
    experiments = Experiment.objects.prefetch_related("streams__relay")
    pools = Pool.objects.select_related("ui_set").prefetch_related("experiments", "windows")
    groups = Group.objects.select_related("ui_set").prefetch_related("pools")
    return {
        "relay": {relay.slug: _relay(relay) for relay in Relay.objects.all()},
        "ui": {
            ui.slug: ui_spec_state(UISpec(ui.title, ui.url, tuple(ui.streams)))
            for ui in UI.objects.all()
        },
        "ui_set": {
            ui_set.slug: {"uis": tuple(sorted(ui.slug for ui in ui_set.uis.all()))}
            for ui_set in UISet.objects.prefetch_related("uis")
        },
        "experiment": {experiment.slug: _experiment(experiment) for experiment in experiments},
        "pool": {pool.slug: _pool(pool) for pool in pools},
        "group": {group.slug: _group(group) for group in groups},
    }


def spec_state(kind: str, spec: Any) -> State:
    """The picture of an object as the manifest describes it."""
    if kind == "relay":
        return relay_spec_state(spec)
    if kind == "ui":
        return ui_spec_state(spec)
    if kind == "ui_set":
        return {"uis": tuple(sorted(spec))}
    if kind == "experiment":
        return experiment_spec_state(spec)
    if kind == "pool":
        return pool_spec_state(spec)
    return group_spec_state(spec)


def relay_spec_state(spec: RelaySpec) -> State:
    return {
        "access_url": spec.access_url,
        "audience": spec.audience,
        "algorithm": spec.algorithm,
        "secret_env": spec.secret_env,
        "secret_file": spec.secret_file,
        "push_enabled": spec.push_enabled,
    }


def ui_spec_state(spec: UISpec) -> State:
    return {"title": spec.title, "url": spec.url, "streams": tuple(spec.streams)}


def experiment_spec_state(spec: ExperimentSpec) -> State:
    state: State = {
        "title": spec.title,
        "description": spec.description,
        "topic_stub": spec.topic_stub,
        "public": spec.public,
        "available": spec.available,
        "unavailable_reason": spec.unavailable_reason,
    }
    for name, stream in sorted(spec.streams.items()):
        state[f"streams.{name}"] = (stream.relay, tuple(stream.scopes))
    return state


def pool_spec_state(spec: PoolSpec) -> State:
    policy = spec.policy
    state: State = {
        "title": spec.title,
        "description": spec.description,
        "experiments": tuple(sorted(spec.experiments)),
        "ui_set": spec.ui_set,
    }
    state.update({key: getattr(policy, key) for key in POLICY_KEYS})
    state["quota"] = _quota(policy.quota_period, policy.quota_limit)
    state["windows.allowed"] = tuple(sorted(spec.allowed))
    state["windows.denied"] = tuple(sorted(spec.denied))
    return state


def group_spec_state(spec: GroupSpec) -> State:
    state: State = {
        "title": spec.title,
        "pools": tuple(sorted(spec.pools)),
        "ui_set": spec.ui_set,
    }
    # Only a hash is ever compared or kept, and only when the manifest names a code.
    if spec.access_code is not None:
        state[ACCESS_CODE] = access_code_hash(spec.access_code)
    return state


def _relay(relay: Relay) -> State:
    return relay_spec_state(
        RelaySpec(
            access_url=relay.access_url,
            algorithm=relay.algorithm,
            audience=relay.audience,
            secret_env=relay.secret_env,
            secret_file=relay.secret_file,
            push_enabled=relay.push_enabled,
        )
    )


def _experiment(experiment: Experiment) -> State:
    state: State = {
        "title": experiment.title,
        "description": experiment.description,
        "topic_stub": experiment.topic_stub,
        "public": experiment.public,
        "available": experiment.available,
        "unavailable_reason": experiment.unavailable_reason,
    }
    for stream in sorted(experiment.streams.all(), key=lambda s: s.name):
        state[f"streams.{stream.name}"] = (stream.relay.slug, tuple(stream.scopes))
    return state


def _pool(pool: Pool) -> State:
    state: State = {
        "title": pool.title,
        "description": pool.description,
        "experiments": tuple(sorted(e.slug for e in pool.experiments.all())),
        "ui_set": pool.ui_set.slug if pool.ui_set else None,
    }
    state.update({key: getattr(pool, key) for key in POLICY_KEYS})
    state["quota"] = _quota(pool.quota_period, pool.quota_limit)
    windows = sorted(pool.windows.all(), key=lambda w: (w.start, w.end))
    for kind in WindowKind.values:
        state[f"windows.{kind}"] = tuple(
            (_utc(w.start), _utc(w.end)) for w in windows if w.kind == kind
        )
    return state


def _group(group: Group) -> State:
    return {
        "title": group.title,
        "pools": tuple(sorted(pool.slug for pool in group.pools.all())),
        "ui_set": group.ui_set.slug if group.ui_set else None,
        ACCESS_CODE: group.access_code_hash,
    }


def _quota(period: int | None, limit: int | None) -> tuple[int, int] | None:
    return (period, limit) if period and limit is not None else None


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


# --- showing values to people ------------------------------------------------------------

_PLAIN = re.compile(r"^[^\s\"',;\[\]]+$")


def iso_utc(moment: datetime) -> str:
    return _utc(moment).isoformat().replace("+00:00", "Z")


def show(name: str, value: Any, *, limit: int | None = None, quote: bool = True) -> str:
    """A field's value as a diff line or an audit entry shows it (never an access code).

    Diff lines quote text that has spaces or punctuation, so that "a; b" reads as one value.
    """
    if name == ACCESS_CODE:
        return "(set)" if value else "(none)"
    if value is None:
        return "none"
    if name in DURATION_KEYS:
        return format_duration(value)
    if name == "quota":
        period, quota_limit = value
        return f"{format_duration(quota_limit)} per {format_duration(period)}"
    if name.startswith("windows."):
        return "[" + ", ".join(f"{iso_utc(s)}/{iso_utc(e)}" for s, e in value) + "]"
    if name.startswith("streams."):
        relay, scopes = value
        return f"{relay} [{', '.join(scopes)}]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(value) + "]"
    if isinstance(value, str):
        if limit is not None and len(value) > limit:
            value = value[: limit - 3] + "..."
        if not quote or _PLAIN.match(value):
            return value
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def shown(state: State) -> dict[str, str]:
    return {name: show(name, value, quote=False) for name, value in state.items()}
