"""The manifest's shape: YAML in, typed specs out, every error naming its key path.

This checks each object on its own (types, formats, min <= max). Whether a name refers to
something that exists (a stream's relay, a pool's experiments) depends on the database as
well as the file, so the planner checks that.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from booking.manifest import readers as read
from booking.manifest.errors import ManifestError, key_path
from booking.manifest.yamlio import read_yaml
from booking.models import Relay
from booking.rules import format_duration

SECTIONS = ("relays", "experiments", "uis", "ui_sets", "pools", "groups")
_NOUNS = {
    "relays": "relay",
    "experiments": "experiment",
    "uis": "UI",
    "ui_sets": "UI set",
    "pools": "pool",
    "groups": "group",
}

# Policy keys left out of a pool take these values (seconds; max_extension 0: no extension).
POLICY_DEFAULTS = {
    "min_duration": 5 * 60,
    "max_duration": 60 * 60,
    "book_ahead": 7 * 86400,
    "start_in_past": 2 * 60,
    "max_bookings": 2,
    "grace_period": 10 * 60,
    "extend_step": 5 * 60,
    "max_extension": 0,
}
DURATION_KEYS = tuple(key for key in POLICY_DEFAULTS if key != "max_bookings")
ACCESS_CODE_MIN_LENGTH = 8

SCOPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._-]*$")
Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class RelaySpec:
    access_url: str
    algorithm: str = Relay.Algorithm.HS256.value
    audience: str = ""
    secret_env: str = ""
    secret_file: str = ""
    push_enabled: bool = True


@dataclass(frozen=True)
class StreamSpec:
    relay: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class ExperimentSpec:
    title: str
    topic_stub: str
    description: str = ""
    public: bool = True
    available: bool = True
    unavailable_reason: str = ""
    streams: Mapping[str, StreamSpec] = field(default_factory=dict)


@dataclass(frozen=True)
class UISpec:
    title: str
    url: str
    streams: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicySpec:
    min_duration: int
    max_duration: int
    book_ahead: int
    start_in_past: int
    max_bookings: int
    grace_period: int
    extend_step: int
    max_extension: int
    quota_period: int | None = None
    quota_limit: int | None = None


@dataclass(frozen=True)
class PoolSpec:
    title: str
    policy: PolicySpec
    description: str = ""
    experiments: tuple[str, ...] = ()
    ui_set: str | None = None
    allowed: tuple[Interval, ...] = ()
    denied: tuple[Interval, ...] = ()


@dataclass(frozen=True)
class GroupSpec:
    title: str
    pools: tuple[str, ...] = ()
    ui_set: str | None = None
    # None: keep the group's code (or generate one for a new group).
    access_code: str | None = None


@dataclass(frozen=True)
class Manifest:
    relays: Mapping[str, RelaySpec] = field(default_factory=dict)
    experiments: Mapping[str, ExperimentSpec] = field(default_factory=dict)
    uis: Mapping[str, UISpec] = field(default_factory=dict)
    ui_sets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    pools: Mapping[str, PoolSpec] = field(default_factory=dict)
    groups: Mapping[str, GroupSpec] = field(default_factory=dict)


def load_manifest(text: str | bytes, *, name: str = "manifest") -> Manifest:
    """Parse and check a manifest file's text; raises ManifestError. `name` labels YAML errors."""
    data = read_yaml(text, name=name)
    if data is None:
        raise ManifestError("", "the manifest is empty")
    return manifest_from_data(data)


def manifest_from_data(data: Any) -> Manifest:
    """Check already-parsed YAML (a mapping of the sections); raises ManifestError."""
    if not isinstance(data, dict):
        raise ManifestError("", f"expected a mapping of {', '.join(SECTIONS)}")
    read.fields(data, "", optional=SECTIONS)
    sections = {name: read.keyed(data.get(name), name, _NOUNS[name]) for name in SECTIONS}
    return Manifest(
        relays={k: _relay(v, f"relays.{k}") for k, v in sections["relays"].items()},
        experiments={
            k: _experiment(k, v, f"experiments.{k}") for k, v in sections["experiments"].items()
        },
        uis={k: _ui(v, f"uis.{k}") for k, v in sections["uis"].items()},
        ui_sets={
            k: read.names(v, f"ui_sets.{k}", what="UI keys") for k, v in sections["ui_sets"].items()
        },
        pools={k: _pool(v, f"pools.{k}") for k, v in sections["pools"].items()},
        groups={k: _group(v, f"groups.{k}") for k, v in sections["groups"].items()},
    )


def _relay(raw: Any, path: str) -> RelaySpec:
    read.fields(
        raw,
        path,
        required=("access_url",),
        optional=("algorithm", "audience", "secret_env", "secret_file", "push_enabled"),
    )
    algorithm = raw.get("algorithm", Relay.Algorithm.HS256.value)
    if algorithm not in Relay.Algorithm.values:
        raise ManifestError(
            f"{path}.algorithm", f"use one of {', '.join(Relay.Algorithm.values)}: {algorithm!r}"
        )
    spec = RelaySpec(
        access_url=read.url(raw["access_url"], f"{path}.access_url", max_length=300),
        algorithm=algorithm,
        audience=read.text(raw.get("audience", ""), f"{path}.audience", max_length=300, blank=True),
        secret_env=read.text(
            raw.get("secret_env", ""), f"{path}.secret_env", max_length=128, blank=True
        ),
        secret_file=read.text(
            raw.get("secret_file", ""), f"{path}.secret_file", max_length=500, blank=True
        ),
        push_enabled=read.boolean(raw.get("push_enabled", True), f"{path}.push_enabled"),
    )
    if spec.secret_env and spec.secret_file:
        raise ManifestError(f"{path}.secret_file", "give secret_env or secret_file, not both")
    if spec.algorithm == Relay.Algorithm.HS256 and not (spec.secret_env or spec.secret_file):
        raise ManifestError(path, "an HS256 relay needs secret_env or secret_file")
    return spec


def _experiment(key: str, raw: Any, path: str) -> ExperimentSpec:
    read.fields(
        raw,
        path,
        required=("title",),
        optional=(
            "description",
            "topic_stub",
            "public",
            "available",
            "unavailable_reason",
            "streams",
        ),
    )
    streams_raw = read.keyed(raw.get("streams"), f"{path}.streams", "stream", pattern=read.TOPIC)
    streams = {}
    for name, stream in streams_raw.items():
        stream_path = f"{path}.streams.{name}"
        read.fields(stream, stream_path, required=("relay", "scopes"))
        streams[name] = StreamSpec(
            relay=read.slug(stream["relay"], f"{stream_path}.relay", what="a relay key"),
            scopes=read.names(
                stream["scopes"], f"{stream_path}.scopes", what="scopes", pattern=SCOPE
            ),
        )
    return ExperimentSpec(
        title=read.text(raw["title"], f"{path}.title", max_length=200),
        topic_stub=read.text(
            raw.get("topic_stub", key), f"{path}.topic_stub", max_length=100, pattern=read.TOPIC
        ),
        description=read.text(
            raw.get("description", ""), f"{path}.description", max_length=10_000, blank=True
        ),
        public=read.boolean(raw.get("public", True), f"{path}.public"),
        available=read.boolean(raw.get("available", True), f"{path}.available"),
        unavailable_reason=read.text(
            raw.get("unavailable_reason", ""),
            f"{path}.unavailable_reason",
            max_length=300,
            blank=True,
        ),
        streams=streams,
    )


def _ui(raw: Any, path: str) -> UISpec:
    read.fields(raw, path, required=("title", "url"), optional=("streams",))
    return UISpec(
        title=read.text(raw["title"], f"{path}.title", max_length=200),
        url=read.text(raw["url"], f"{path}.url", max_length=1000),
        streams=read.names(
            raw.get("streams"), f"{path}.streams", what="stream names", pattern=read.TOPIC
        ),
    )


def _pool(raw: Any, path: str) -> PoolSpec:
    read.fields(
        raw,
        path,
        required=("title",),
        optional=("description", "experiments", "ui_set", "policy", "windows"),
    )
    ui_set = raw.get("ui_set")
    windows = {} if raw.get("windows") is None else raw["windows"]
    read.fields(windows, f"{path}.windows", optional=("allowed", "denied"))
    return PoolSpec(
        title=read.text(raw["title"], f"{path}.title", max_length=200),
        description=read.text(
            raw.get("description", ""), f"{path}.description", max_length=10_000, blank=True
        ),
        experiments=read.names(
            raw.get("experiments"), f"{path}.experiments", what="experiment keys"
        ),
        ui_set=read.slug(ui_set, f"{path}.ui_set", what="a UI set key")
        if ui_set is not None
        else None,
        policy=_policy(raw.get("policy"), f"{path}.policy"),
        allowed=_windows(windows.get("allowed"), f"{path}.windows.allowed"),
        denied=_windows(windows.get("denied"), f"{path}.windows.denied"),
    )


def _policy(raw: Any, path: str) -> PolicySpec:
    raw = {} if raw is None else raw
    read.fields(raw, path, optional=(*POLICY_DEFAULTS, "quota"))
    values = dict(POLICY_DEFAULTS)
    for key in DURATION_KEYS:
        if key in raw:
            values[key] = read.duration(raw[key], key_path(path, key))
    if "max_bookings" in raw:
        values["max_bookings"] = read.whole_number(raw["max_bookings"], f"{path}.max_bookings")
    if values["min_duration"] > values["max_duration"]:
        raise ManifestError(
            f"{path}.min_duration",
            f"min_duration {format_duration(values['min_duration'])} is longer than "
            f"max_duration {format_duration(values['max_duration'])}",
        )
    if values["max_duration"] <= 0:
        raise ManifestError(f"{path}.max_duration", "must be longer than 0s")
    if values["extend_step"] < 60 or values["extend_step"] % 60:
        raise ManifestError(f"{path}.extend_step", "must be whole minutes (at least 1m)")
    quota = raw.get("quota")
    if quota is not None:
        read.fields(quota, f"{path}.quota", required=("period", "limit"))
        values["quota_period"] = read.duration(quota["period"], f"{path}.quota.period")
        values["quota_limit"] = read.duration(quota["limit"], f"{path}.quota.limit")
        if values["quota_period"] <= 0:
            raise ManifestError(f"{path}.quota.period", "must be longer than 0s")
    return PolicySpec(**values)


def _windows(raw: Any, path: str) -> tuple[Interval, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ManifestError(path, f"expected a list of {{start, end}}, got {read.kind_of(raw)}")
    windows = set()
    for index, window in enumerate(raw):
        window_path = key_path(path, index)
        read.fields(window, window_path, required=("start", "end"))
        start = read.moment(window["start"], f"{window_path}.start")
        end = read.moment(window["end"], f"{window_path}.end")
        if end <= start:
            raise ManifestError(f"{window_path}.end", "must be after start")
        windows.add((start, end))
    return tuple(sorted(windows))


def _group(raw: Any, path: str) -> GroupSpec:
    read.fields(raw, path, required=("title",), optional=("pools", "ui_set", "access_code"))
    ui_set = raw.get("ui_set")
    code = raw.get("access_code")
    if code is not None:
        code = read.text(code, f"{path}.access_code", max_length=200).strip()
        if len(code) < ACCESS_CODE_MIN_LENGTH:
            raise ManifestError(
                f"{path}.access_code",
                f"too short to be unguessable (at least {ACCESS_CODE_MIN_LENGTH} characters)",
            )
    return GroupSpec(
        title=read.text(raw["title"], f"{path}.title", max_length=200),
        pools=read.names(raw.get("pools"), f"{path}.pools", what="pool keys"),
        ui_set=read.slug(ui_set, f"{path}.ui_set", what="a UI set key")
        if ui_set is not None
        else None,
        access_code=code,
    )
