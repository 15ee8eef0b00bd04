"""The catalogue as a YAML manifest: check it, plan the diff, apply it, export it.

    manifest = load_manifest(text)                        # ManifestError names the key path
    changes = manifest_plan(manifest, prune=False)        # nothing written; change_lines()
    result = manifest_apply(manifest, now=now, prune=False, actor=user)
    text = manifest_dump(manifest_export())

The management commands import_manifest and export_manifest only parse arguments and print.
"""

from booking.manifest.apply import ManifestResult, manifest_apply
from booking.manifest.errors import ManifestError
from booking.manifest.export import manifest_dump, manifest_export
from booking.manifest.plan import Change, FieldChange, change_lines, manifest_plan
from booking.manifest.schema import POLICY_DEFAULTS, Manifest, load_manifest, manifest_from_data
from booking.manifest.yamlio import read_yaml

__all__ = [
    "POLICY_DEFAULTS",
    "Change",
    "FieldChange",
    "Manifest",
    "ManifestError",
    "ManifestResult",
    "change_lines",
    "load_manifest",
    "manifest_apply",
    "manifest_dump",
    "manifest_export",
    "manifest_from_data",
    "manifest_plan",
    "read_yaml",
]
