"""Reading and writing manifest YAML.

Reading is safe YAML with two differences: times stay strings (so that the schema can insist
on an offset instead of PyYAML quietly accepting a naive time), and a key given twice in one
mapping is an error instead of the last one silently winning.
"""

import io
from typing import Any

import yaml

from booking.manifest.errors import ManifestError

_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _Loader(yaml.SafeLoader):
    pass


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)
    seen: set = set()
    for key_node, _value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            repeated = key in seen
        except TypeError:
            continue  # construct_mapping reports an unhashable key itself
        if repeated:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"the key {key!r} is given twice",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(text: str | bytes, *, name: str = "manifest") -> Any:
    """The YAML document in `text`, or a ManifestError saying where it is broken."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    stream = io.StringIO(text)
    stream.name = name  # what PyYAML's error marks call the document
    try:
        return yaml.load(stream, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise ManifestError("", f"not valid YAML: {exc}") from None


class _Dumper(yaml.SafeDumper):
    pass


_SCALAR = str | int | float | bool


def _flat(value: object) -> bool:
    if isinstance(value, list):
        return all(isinstance(item, _SCALAR) for item in value)
    return isinstance(value, _SCALAR)


def _represent_list(dumper: _Dumper, data: list) -> yaml.SequenceNode:
    # Lists of plain values (scopes, experiments) read best on one line.
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=_flat(data))


class FlowMap(dict):
    """A small mapping written on one line: a stream, a window, a quota."""


def _represent_flow_map(dumper: _Dumper, data: FlowMap) -> yaml.MappingNode:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(FlowMap, _represent_flow_map)


def dump_yaml(data: Any) -> str:
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
