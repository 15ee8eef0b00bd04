"""The one error a manifest can raise: what is wrong, and at which key path."""


class ManifestError(Exception):
    """An invalid manifest. `path` is like `pools.pendulums.policy.min_duration`."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


def key_path(path: str, key: object) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)
