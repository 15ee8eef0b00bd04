"""The production description (docker-compose.yml), its documentation and Django's
deployment checks agree with each other and with the settings.

docker-compose is installed by scripts/test (scripts/services.py ensure_packages); a
missing binary fails these tests rather than skipping them.
"""

# These tests run fixed local programs (docker-compose, manage.py) with argument lists.
# ruff: noqa: S603

import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOC = ROOT / "docs" / "operations.md"
ENV_EXAMPLE = ROOT / ".env.example"

# What every process needs to find its programs, and nothing of the test run's settings.
BARE_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
PRODUCTION_ENV = {
    "DJANGO_DEBUG": "0",
    "PLATFORM_URL": "https://lab.example.org",
    "DJANGO_ALLOWED_HOSTS": "lab.example.org",
}


def docker_compose(*args: str, env_file: Path, cwd: Path) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed: run `python3 scripts/services.py ensure`"
    command = [binary, "--file", str(COMPOSE), "--env-file", str(env_file), *args]
    return subprocess.run(command, cwd=cwd, env=BARE_ENV, capture_output=True, text=True)


def env_example() -> dict[str, str]:
    pairs = re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), re.M)
    return dict(pairs)


@pytest.fixture
def filled_env_file(tmp_path: Path) -> Path:
    """.env.example with its required blanks filled in, as an operator would."""
    values = env_example() | {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "POSTGRES_PASSWORD": secrets.token_hex(16),
    }
    path = tmp_path / "production.env"
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    return path


def compose_model() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def app_services(model: dict) -> dict[str, dict]:
    """The services that run the application image (not postgres or redis)."""
    return {name: service for name, service in model["services"].items() if "build" in service}


def documented_variables() -> set[str]:
    """First-column names of the doc's tables: | `NAME` | ..."""
    return set(re.findall(r"^\|\s*`([A-Z][A-Z0-9_]*)`", DOC.read_text(), re.M))


def settings_variables() -> set[str]:
    """Names config/settings/base.py reads, through the env helpers or os.environ."""
    source = (ROOT / "config" / "settings" / "base.py").read_text()
    readers = r"""(?:env_\w+\(|os\.getenv\(|os\.environ\.get\(|os\.environ\[)"""
    return set(re.findall(readers + r"""\s*["']([A-Z][A-Z0-9_]*)["']""", source))


def manage_check_deploy(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = BARE_ENV | {"DATABASE_URL": f"sqlite:///{tmp_path / 'deploy.sqlite3'}"} | env
    command = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)


# --- docker-compose.yml ----------------------------------------------------------------


def test_the_compose_file_is_valid(filled_env_file, tmp_path):
    result = docker_compose("config", "-q", env_file=filled_env_file, cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_the_compose_file_refuses_to_start_without_a_secret_key(filled_env_file, tmp_path):
    text = re.sub(
        r"^DJANGO_SECRET_KEY=.*$", "DJANGO_SECRET_KEY=", filled_env_file.read_text(), flags=re.M
    )
    filled_env_file.write_text(text)
    result = docker_compose("config", "-q", env_file=filled_env_file, cwd=tmp_path)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr + result.stdout


def test_env_example_names_every_value_the_compose_file_interpolates():
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE.read_text()))
    assert interpolated
    example = ENV_EXAMPLE.read_text()
    missing = {name for name in interpolated if not re.search(rf"^#?\s*{name}=", example, re.M)}
    assert not missing, f".env.example lacks {sorted(missing)}"


def web_services() -> dict[str, dict]:
    return {
        name: service
        for name, service in app_services(compose_model()).items()
        if service["command"].startswith("uvicorn ")
    }


def test_the_web_processes_run_uvicorn_with_the_asgi_application_and_no_in_process_jobs():
    webs = web_services()
    assert len(webs) >= 2
    for service in webs.values():
        assert service["command"].startswith("uvicorn config.asgi:application ")
        assert service["environment"]["JOBS_IN_PROCESS"] == "0"
        assert service["environment"]["WEB_PROCESSES"] == str(len(webs))
        assert service["environment"]["REDIS_URL"].startswith("redis://")
    # Every other service runs Celery or the migration: nothing else serves HTTP.
    others = [s["command"] for n, s in app_services(compose_model()).items() if n not in webs]
    assert all(c.startswith(("celery ", 'sh -c "python manage.py migrate')) for c in others)


def test_the_web_processes_are_the_set_up_the_benchmark_judges():
    """make bench judges issue 2's targets on the set-up named in scripts/bench, started
    with the options the compose file gives uvicorn."""
    judged = re.search(
        r'^PRODUCTION = "uvicorn:(\d+)"$', (ROOT / "scripts" / "bench").read_text(), re.M
    )
    assert judged, "scripts/bench names no uvicorn set-up as PRODUCTION"
    webs = web_services()
    assert len(webs) == int(judged.group(1))
    source = (ROOT / "benchmarks" / "_common.py").read_text()
    options = re.search(r"UVICORN_OPTIONS = \(\n((?:\s+\"[^\n]*\n)+)\s*\)\.split\(\)", source)
    assert options, "benchmarks/_common.py has no UVICORN_OPTIONS"
    benchmarked = "".join(re.findall(r'"([^"]*)"', options.group(1))).split()
    for service in webs.values():
        command = shlex.split(service["command"])
        assert command[:2] == ["uvicorn", "config.asgi:application"]
        address = ["--host", "0.0.0.0", "--port", "8000"]
        assert command[2:6] == address
        assert command[6:] == benchmarked


def test_exactly_one_beat_and_at_least_one_worker_run():
    commands = [s["command"] for s in app_services(compose_model()).values()]
    assert sum("celery -A config beat" in c for c in commands) == 1
    assert sum("celery -A config worker" in c for c in commands) >= 1


# --- docs/operations.md ----------------------------------------------------------------


def test_every_application_variable_in_the_compose_file_is_documented():
    used = set()
    for service in app_services(compose_model()).values():
        used |= set(service["environment"])
    assert used
    missing = used - documented_variables()
    assert not missing, f"docs/operations.md does not describe {sorted(missing)}"


def test_every_variable_the_compose_file_interpolates_is_documented():
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE.read_text()))
    doc = DOC.read_text()
    missing = {name for name in interpolated if f"`{name}`" not in doc}
    assert not missing, f"docs/operations.md does not describe {sorted(missing)}"


def test_every_variable_the_settings_read_is_documented():
    read = settings_variables()
    assert {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_SECRET_KEY"} <= read
    missing = read - documented_variables()
    assert not missing, f"docs/operations.md does not describe {sorted(missing)}"
    readme = (DOC.parent.parent / "README.md").read_text()
    missing = {name for name in read if f"`{name}`" not in readme}
    assert not missing, f"README.md does not list {sorted(missing)}"


def test_the_documented_commands_are_the_ones_the_compose_file_runs():
    doc = DOC.read_text()
    readme = " ".join((DOC.parent.parent / "README.md").read_text().split())
    for name, service in app_services(compose_model()).items():
        assert f"`{service['command']}`" in doc, f"{name}'s command is not in the doc"
        assert f"`{service['command']}`" in readme, f"{name}'s command is not in the README"


# --- manage.py check --deploy ----------------------------------------------------------


def test_check_deploy_passes_with_production_settings(tmp_path):
    env = PRODUCTION_ENV | {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}
    result = manage_check_deploy(env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout, result.stdout


def test_check_deploy_passes_with_the_compose_web_environment(filled_env_file, tmp_path):
    resolved = docker_compose("config", env_file=filled_env_file, cwd=tmp_path)
    assert resolved.returncode == 0, resolved.stderr
    environment = yaml.safe_load(resolved.stdout)["services"]["web1"]["environment"]
    # The database is not reached by the checks; a local file stands in for PostgreSQL.
    environment = {k: str(v) for k, v in environment.items() if k != "DATABASE_URL"}
    result = manage_check_deploy(environment, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_warns_about_the_secret_key_without_production_settings(tmp_path):
    result = manage_check_deploy({}, tmp_path)
    assert result.returncode != 0
    assert "security.W009" in result.stdout + result.stderr


def _makes_venvs(python: str) -> bool:
    found = shutil.which(python)
    done = found and subprocess.run(
        [found, "-c", "import ensurepip, venv"], capture_output=True, check=False
    )
    return bool(done) and done.returncode == 0


def test_bootstrap_takes_the_distributions_optimised_python_first():
    """scripts/bootstrap makes .venv with /usr/bin/python3.11 when it can, else python3.11
    from PATH (a default pyenv build), and with PYTHON when that is set."""
    bootstrap = [str(ROOT / "scripts" / "bootstrap"), "--which-python"]
    chosen = subprocess.run(bootstrap, env=BARE_ENV, capture_output=True, text=True, check=True)
    if _makes_venvs("/usr/bin/python3.11"):
        expected = "/usr/bin/python3.11"
    else:
        expected = "python3.11" if _makes_venvs("python3.11") else ""
    assert chosen.stdout.strip() == expected

    named = {**BARE_ENV, "PYTHON": "/opt/other/python3.11"}
    chosen = subprocess.run(bootstrap, env=named, capture_output=True, text=True, check=True)
    assert chosen.stdout.strip() == "/opt/other/python3.11"
