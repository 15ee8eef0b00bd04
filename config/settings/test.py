"""Test settings: the base settings plus a file-backed SQLite test database.

A file (not SQLite's shared in-memory database) so that IMMEDIATE transactions and WAL
behave as in production and several threads or processes can share it.
"""

import os
import tempfile

from config.settings.base import *  # noqa: F403
from config.settings.base import DATABASES

# Fast hashes for the suite; live server processes (production settings) read PBKDF2 ones,
# which tests that log in over HTTP set with the live_passwords fixture (tests/conftest.py).
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
JOBS_IN_PROCESS = False
# Off for the suite, whose tests change users and sessions and look at once; on in live
# server processes (production settings), and in tests/web/test_login_cache.py.
LOGIN_CACHE_SECONDS = 0
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
MAIL_IN_BACKGROUND = False  # tests/booking/test_notifications.py covers the background path

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    _worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(
            tempfile.gettempdir(), f"platform-test-{os.getpid()}-{_worker}.sqlite3"
        )
    }
