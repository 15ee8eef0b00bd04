"""Fixtures for tests that run real server processes."""

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def load_services():
    spec = importlib.util.spec_from_file_location(
        "platform_services", ROOT / "scripts" / "services.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def services():
    return load_services()


@pytest.fixture(scope="session")
def redis_url(services, tmp_path_factory):
    """The test command's Redis, or a private one started here (never a skip)."""
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield url
        return
    url, stop = services.start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield url
    finally:
        stop()
