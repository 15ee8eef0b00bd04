"""The long versions of the model tests, in one command, and a summary of what they saw.

On SQLite and on a private PostgreSQL server (scripts/services.py), in turn:

- tests/model/test_stateful.py: the state machine over the real services, with many more
  runs and steps than CI gives it (PROOF_EXAMPLES, PROOF_STEPS);
- tests/model/test_fuzz_api.py: the schemathesis fuzz of every documented operation, with
  many more cases per operation (PROOF_FUZZ_EXAMPLES);
- tests/model/test_faults.py: every fault run (web process killed, database gone, relay
  unreachable), and Redis stopped for a while (tests/live/test_cross_process.py);

then benchmarks/history_check.py: a concurrency run on real daphne processes with aiohttp
clients, its history checked afterwards (no double booking, every confirmed booking
readable, every refused one left nothing).

    .venv/bin/python benchmarks/proof.py                  # everything: 8 to 10 minutes, 2 cores
    .venv/bin/python benchmarks/proof.py --quick          # CI sizes, as a smoke test
    .venv/bin/python benchmarks/proof.py --backends sqlite --parts stateful,history
    .venv/bin/python benchmarks/proof.py --examples 600 --steps 80 --fuzz-examples 400

Exits non-zero when any part fails. Everything runs on loopback.
"""

# Starting this project's own programs with argument lists is part of the job.
# ruff: noqa: S603

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
# What pytest runs for each part (files, or a file's test).
TEST_FILES = {
    "stateful": ("tests/model/test_stateful.py",),
    "fuzz": ("tests/model/test_fuzz_api.py",),
    "faults": (
        "tests/model/test_faults.py",
        # Redis stopped for a while, then back: tests/live holds it with the cross-process test.
        "tests/live/test_cross_process.py::"
        "test_without_redis_bookings_and_cancels_work_and_clients_catch_up",
    ),
}
PARTS = (*TEST_FILES, "history")
# Settings the developer's shell may hold: each run chooses its own.
FOREIGN = re.compile(
    r"^(DJANGO_|DATABASE_URL$|REDIS_URL$|CELERY_|TEST_POSTGRES_URL$|PROOF_|BENCH_JSON$)"
)


say = common.say


def clean_env(**extra: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not FOREIGN.match(k)} | extra


def run_pytest(files: list[str], env: dict[str, str], report: Path, log: Path) -> int:
    command = [PYTHON, "-m", "pytest", *files, "-p", "no:cacheprovider", "-q", "-rfEX"]
    command += [f"--junitxml={report}", "-s"]  # -s: the fault runs print what they saw
    with log.open("w") as out:
        return subprocess.run(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        ).returncode


def _sum(results) -> dict:
    """The counts of several files' results added up ({} when there are none)."""
    total: dict = {}
    for result in results:
        for key, value in result.items():
            total[key] = total.get(key, 0) + value
    return total


def results_by_file(report: Path) -> dict[str, dict]:
    """Per test file: passed, failed, xfailed (skipped in JUnit terms) and seconds."""
    out: dict[str, dict] = {}
    try:
        root = ET.parse(report).getroot()  # noqa: S314 - our own pytest's report
    except (OSError, ET.ParseError):
        return out
    for case in root.iter("testcase"):
        name = case.get("classname", "").split(".")[-1]
        entry = out.setdefault(name, {"passed": 0, "failed": 0, "xfailed": 0, "seconds": 0.0})
        entry["seconds"] += float(case.get("time", 0))
        if case.find("failure") is not None or case.find("error") is not None:
            entry["failed"] += 1
        elif case.find("skipped") is not None:
            entry["xfailed"] += 1
        else:
            entry["passed"] += 1
    return out


def stats(folder: Path) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def describe_stateful(found: dict) -> str:
    s = found.get("stateful", {})
    if not s:
        return ""

    def refusals(prefix: str) -> str:
        codes = sorted(
            ((v, k.removeprefix(prefix)) for k, v in s.items() if k.startswith(prefix)),
            reverse=True,
        )
        return ", ".join(f"{code} {count}" for count, code in codes) or "none"

    return (
        f"bookings: {s.get('book confirmed', 0)} confirmed; refused: "
        f"{refusals('book refused: ')}\n"
        f"sessions: {s.get('session started', 0)} started; refused: "
        f"{refusals('session refused: ')}\n"
        f"extensions: {s.get('extend done', 0)} done; refused: {refusals('extend refused: ')}\n"
        f"cancels: {s.get('cancel done', 0)} done, {s.get('cancel unchanged', 0)} changed "
        f"nothing; revocations: {s.get('revocations', 0)}, "
        f"{s.get('revocations purged', 0)} purged in {s.get('purges', 0)} purges; "
        f"sweeps: {s.get('sweeps', 0)}; relay polls: {s.get('poll ok', 0)} ok, "
        f"{s.get('poll failed', 0)} failed; relay restarts: {s.get('relay restarts', 0)}; "
        f"clock moves: {s.get('clock moved', 0)}"
    )


def describe_fuzz(found: dict) -> str:
    f = found.get("fuzz", {})
    if not f:
        return ""
    total = sum(v for k, v in f.items() if not k.startswith("known"))
    statuses: dict[str, int] = {}
    for key, count in f.items():
        if not key.startswith("known"):
            status = key.rsplit(" ", 1)[1]
            statuses[status] = statuses.get(status, 0) + count
    known = {k.removeprefix("known crash: "): v for k, v in f.items() if k.startswith("known")}
    text = f"{total} requests; statuses " + ", ".join(
        f"{s}: {n}" for s, n in sorted(statuses.items())
    )
    if known:
        text += "; known crashes met: " + ", ".join(f"{k} ({v})" for k, v in known.items())
    return text


def describe_faults(found: dict) -> str:
    parts = []
    for name, data in found.items():
        if name.startswith("fault-"):
            parts.append(
                f"{name.removeprefix('fault-')}: {json.dumps(data, separators=(',', ':'))}"
            )
    return "\n".join(parts)


def run_backend(backend: str, parts: list[str], args: argparse.Namespace, workdir: Path) -> list:
    files = [f for p in parts if p in TEST_FILES for f in TEST_FILES[p]]
    if not files:
        return []
    folder = workdir / f"stats-{backend}"
    folder.mkdir()
    extra = {
        "PROOF_EXAMPLES": str(args.examples),
        "PROOF_STEPS": str(args.steps),
        "PROOF_FUZZ_EXAMPLES": str(args.fuzz_examples),
        "PROOF_STATS_DIR": str(folder),
    }
    stop = None
    if backend == "postgres":
        # Its own folder: the postgres user must reach it, which a private one forbids.
        database_dir = Path(tempfile.mkdtemp(prefix="labbook-proof-postgres-"))
        url, stop_server = common.services().start_postgres(database_dir)

        def stop() -> None:
            stop_server()
            shutil.rmtree(database_dir, ignore_errors=True)

        extra |= {"DATABASE_URL": url, "TEST_POSTGRES_URL": url}
    try:
        say(f"[{backend}] pytest {' '.join(files)}")
        began = time.monotonic()
        log = workdir / f"pytest-{backend}.log"
        code = run_pytest(files, clean_env(**extra), workdir / f"{backend}.xml", log)
        elapsed = time.monotonic() - began
    finally:
        if stop:
            stop()
    by_file = results_by_file(workdir / f"{backend}.xml")
    found = stats(folder)
    rows = []
    for part in parts:
        if part not in TEST_FILES:
            continue
        result = _sum(by_file.get(Path(f.split("::")[0]).stem, {}) for f in TEST_FILES[part])
        ok = code == 0 or (result and not result["failed"])
        notes = {
            "stateful": describe_stateful,
            "fuzz": describe_fuzz,
            "faults": describe_faults,
        }[part](found)
        rows.append(
            {
                "part": part,
                "backend": backend,
                "ok": bool(ok and result),
                "tests": result,
                "notes": notes,
            }
        )
    if code != 0:
        say(f"[{backend}] pytest exited {code}; its output: {log}")
        tail = log.read_text(errors="replace").splitlines()[-40:]
        say("\n".join(tail))
    say(f"[{backend}] done in {elapsed:.0f} s")
    return rows


def run_history(args: argparse.Namespace, backends: list[str]) -> list:
    rows = []
    for backend in backends:
        say(f"[{backend}] history check")
        done = subprocess.run(
            [
                PYTHON,
                str(ROOT / "benchmarks" / "history_check.py"),
                "--backend",
                backend,
                "--clients",
                str(args.history_clients),
                "--seconds",
                str(args.history_seconds),
                "--json",
            ],
            cwd=ROOT,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        try:
            (result,) = json.loads(done.stdout)
        except ValueError:
            say(done.stderr[-3000:])
            rows.append({"part": "history", "backend": backend, "ok": False, "notes": "crashed"})
            continue
        bad = {k: v for k, v in result["violations"].items() if v}
        notes = (
            f"{result['attempts']} attempts by {result['clients']} clients on "
            f"{result['processes']} daphne processes, {result['per second']}/s, "
            f"p99 {result['p99 ms']} ms; "
            + ", ".join(f"{k}: {v}" for k, v in result["outcomes"].items())
            + ("; sound" if not bad else f"; VIOLATIONS {bad} {result['examples']}")
        )
        rows.append(
            {
                "part": "history",
                "backend": backend,
                "ok": done.returncode == 0 and not bad,
                "tests": {"seconds": result["seconds"]},
                "notes": notes,
            }
        )
    return rows


def summary(rows: list[dict], elapsed: float) -> str:
    lines = ["", "== proof summary " + "=" * 62]
    for row in rows:
        tests = row.get("tests") or {}
        counts = ""
        if "passed" in tests:
            counts = (
                f"{tests['passed']} passed, {tests['failed']} failed, {tests['xfailed']} xfailed"
            )
        seconds = f"{tests.get('seconds', 0):.0f} s"
        verdict = "ok" if row["ok"] else "FAILED"
        lines.append(f"{row['part']:<9} {row['backend']:<9} {verdict:<7} {seconds:>6}  {counts}")
        for note in str(row.get("notes", "")).splitlines():
            lines.append(f"    {note}")
    lines.append(
        f"total {elapsed:.0f} s; " + ("all sound" if all(r["ok"] for r in rows) else "FAILURES")
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--examples", type=int, default=200, help="state machine runs")
    parser.add_argument("--steps", type=int, default=50, help="steps per state machine run")
    parser.add_argument("--fuzz-examples", type=int, default=120, help="cases per operation")
    parser.add_argument("--history-clients", type=int, default=24)
    parser.add_argument("--history-seconds", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="CI sizes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.examples, args.steps, args.fuzz_examples = 25, 30, 12
        args.history_seconds = 5.0
    backends = [b for b in args.backends.split(",") if b]
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS) | set(backends) - {"sqlite", "postgres"}
    if unknown:
        parser.error(f"unknown: {', '.join(sorted(unknown))}")
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="labbook-proof-"))
    rows: list[dict] = []
    try:
        for backend in backends:
            rows += run_backend(backend, parts, args, workdir)
        if "history" in parts:
            rows += run_history(args, backends)
    finally:
        if all(r["ok"] for r in rows):
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"logs kept in {workdir}")
    common.save({"rows": rows, "seconds": time.monotonic() - began})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(summary(rows, time.monotonic() - began))
    return 0 if rows and all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
