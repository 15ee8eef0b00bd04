"""Staff roles as Django groups with permissions, defined here and created idempotently.

`roles_setup()` runs in the data migration booking/0004_roles and in
`python manage.py setup_roles`; each run makes every role group hold exactly the permissions
listed below (a lab manager's hand edits to a role group are undone by the next run: roles
live in code, a person's extra rights in their own user permissions).

The per-experiment maintainer is not a group: it is any staff user listed in an
experiment's `maintainers`, checked object by object in booking.admin_permissions.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from django.apps import apps as global_apps
from django.apps.registry import Apps

LAB_MANAGER = "Lab manager"
EXPERIMENT_MAINTAINER = "Experiment maintainer"
POOL_MANAGER = "Pool manager"
POLICY_EDITOR = "Policy editor"

ROLE_NAMES = (LAB_MANAGER, EXPERIMENT_MAINTAINER, POOL_MANAGER, POLICY_EDITOR)

# Permissions that are not a model's add/change/delete/view: (app, model, codename, name).
CUSTOM_PERMISSIONS = (
    (
        "booking",
        "experiment",
        "change_experiment_service",
        "Can take experiments out of and back into service",
    ),
    ("booking", "experiment", "import_manifest", "Can download and upload the catalogue manifest"),
    ("booking", "pool", "change_pool_membership", "Can change which experiments are in a pool"),
    ("booking", "pool", "change_pool_policy", "Can change a pool's policy and windows"),
    ("booking", "booking", "view_usage_report", "Can view usage reports"),
)

# The models staff work with; a lab manager gets all four permissions on each.
LAB_MODELS = {
    "booking": (
        "relay",
        "experiment",
        "stream",
        "ui",
        "uiset",
        "pool",
        "window",
        "group",
        "booking",
        "auditentry",
        "emailrecord",
    ),
    "sessions_app": ("session", "issuedtoken", "signingkey"),
    "relay_control": ("revocation", "revocationdelivery", "relayapitoken"),
    "messaging": ("message", "surveyresponse"),
    "auth": ("user", "group"),
}
ACTIONS = ("add", "change", "delete", "view")
# A lab manager also holds every other permission of these apps (models added later).
LAB_APPS = (*LAB_MODELS, "web")


def _model_perms(app: str, model: str, actions: Iterable[str] = ACTIONS) -> set[str]:
    return {f"{app}.{action}_{model}" for action in actions}


ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    EXPERIMENT_MAINTAINER: frozenset(
        _model_perms("booking", "experiment", ("add", "change", "view"))
        | _model_perms("booking", "stream")
        | {"booking.view_relay", "booking.change_experiment_service"}
    ),
    POOL_MANAGER: frozenset(
        {
            "booking.view_pool",
            "booking.change_pool",
            "booking.change_pool_membership",
            "booking.view_experiment",
        }
    ),
    POLICY_EDITOR: frozenset(
        {"booking.view_pool", "booking.change_pool", "booking.change_pool_policy"}
        | _model_perms("booking", "window")
    ),
}


def _lab_manager_perms() -> frozenset[str]:
    perms = {f"{app}.{codename}" for app, _, codename, _ in CUSTOM_PERMISSIONS}
    for app, models in LAB_MODELS.items():
        for model in models:
            perms |= _model_perms(app, model)
    return frozenset(perms)


ROLE_PERMISSIONS[LAB_MANAGER] = _lab_manager_perms()


@dataclass(frozen=True)
class RoleSummary:
    name: str
    permissions: int
    created: bool


def _verbose_name(app: str, model: str) -> str:
    try:
        return str(global_apps.get_model(app, model)._meta.verbose_name)
    except LookupError:
        return model


def _permission_names() -> dict[tuple[str, str, str], str]:
    """(app, model, codename) -> name, for every permission a role refers to."""
    names = {(app, model, codename): name for app, model, codename, name in CUSTOM_PERMISSIONS}
    for app, models in LAB_MODELS.items():
        for model in models:
            verbose = _verbose_name(app, model)
            for action in ACTIONS:
                names[(app, model, f"{action}_{model}")] = f"Can {action} {verbose}"
    return names


def roles_setup(apps: Apps | None = None) -> list[RoleSummary]:
    """Create the permissions the roles need (if missing) and give each role group exactly
    its permissions. Safe to run any number of times; `apps` is a migration's registry."""
    apps = apps or global_apps
    content_type_model = apps.get_model("contenttypes", "ContentType")
    permission_model = apps.get_model("auth", "Permission")
    group_model = apps.get_model("auth", "Group")

    by_label: dict[str, object] = {}
    content_types: dict[tuple[str, str], object] = {}
    for (app, model, codename), name in _permission_names().items():
        if (app, model) not in content_types:
            content_types[(app, model)], _ = content_type_model.objects.get_or_create(
                app_label=app, model=model
            )
        permission, _ = permission_model.objects.get_or_create(
            content_type=content_types[(app, model)],
            codename=codename,
            defaults={"name": name[:255]},
        )
        by_label[f"{app}.{codename}"] = permission

    extra = permission_model.objects.filter(content_type__app_label__in=LAB_APPS)
    summaries = []
    for role in ROLE_NAMES:
        group, created = group_model.objects.get_or_create(name=role)
        wanted = [by_label[label] for label in sorted(ROLE_PERMISSIONS[role])]
        if role == LAB_MANAGER:
            wanted = list({p.pk: p for p in [*wanted, *extra]}.values())
        group.permissions.set(wanted)
        summaries.append(RoleSummary(role, len(wanted), created))
    return summaries
