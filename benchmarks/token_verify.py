"""Stream-token verifications per second on one core, HS256 and EdDSA (and ES256).

Runs our verification module (sessions_app.tokens.verify_stream_token: pinned algorithm,
required claims, exact aud/iss) in one process, so the figure is per core. The key lookup
for EdDSA/ES256 goes to the database as in production; the figure is also printed for the
bare signature check (what a relay caching our JWKS pays).

    .venv/bin/python benchmarks/token_verify.py [--seconds 3]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

DB = Path(tempfile.mkdtemp()) / "tokens.sqlite3"
os.environ.update(
    {
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DATABASE_URL": f"sqlite:///{DB}",
        "BENCH_RELAY_SECRET": "bench-relay-secret-0123456789abcdef-0123",
        "LOG_LEVEL": "WARNING",
        "JOBS_IN_PROCESS": "0",
    }
)

import django  # noqa: E402

django.setup()

import jwt  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

from booking.models import Relay  # noqa: E402
from sessions_app import keys, tokens  # noqa: E402


def rate(fn, seconds: float) -> float:
    count = 0
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        for _ in range(100):
            fn()
        count += 100
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    now = timezone.now()
    results = {}
    for algorithm in ("HS256", "EdDSA", "ES256"):
        if algorithm != "HS256":
            keys.key_rotate(algorithm=algorithm, now=now)
        relay = Relay.objects.create(
            slug=f"r-{algorithm.lower()}",
            access_url=f"http://127.0.0.1:9/{algorithm}/access",
            algorithm=algorithm,
            secret_env="BENCH_RELAY_SECRET",
        )
        claims = tokens.stream_claims(
            relay=relay,
            user_id=1,
            booking_id="b",
            topic="pend00-data",
            scopes=["read"],
            now=now,
            exp=now + timezone.timedelta(hours=1),
        )
        token = tokens.sign(relay, claims)
        tokens.verify_stream_token(token, relay=relay)  # must pass before timing it
        full = rate(lambda t=token, r=relay: tokens.verify_stream_token(t, relay=r), args.seconds)
        if algorithm == "HS256":
            key = tokens.relay_secret(relay)
        else:
            key = keys.public_pem(keys.active_key(algorithm))
        bare = rate(
            lambda t=token, k=key, a=algorithm, aud=relay.effective_audience: jwt.decode(
                t, k, algorithms=[a], audience=aud
            ),
            args.seconds,
        )
        results[algorithm] = {"verify_per_s": round(full), "signature_only_per_s": round(bare)}
    common.save(results)
    if args.json:
        print(json.dumps(results))
        return
    print(f"{'algorithm':<10}{'verify/s (our module)':>24}{'signature only/s':>20}")
    for algorithm, figures in results.items():
        print(
            f"{algorithm:<10}{figures['verify_per_s']:>24,}{figures['signature_only_per_s']:>20,}"
        )
    print("one process = one core (the GIL); multiply by processes for a server's capacity")


if __name__ == "__main__":
    main()
