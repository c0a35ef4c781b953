"""`make reliability`: load, faults and hostile inputs, in one table.

1. Load: a server (`manage.py serve`) and a Celery worker on a Postgres database and a Redis
   database of their own (dropped and made afresh: RELIABILITY_DATABASE_URL, whose name must
   contain "reliability", and RELIABILITY_REDIS_URL, which is flushed), eSpeak NG as the engine.
   50 clients for 60 s over loopback (reliability/load.py), while one more clones voices through
   the worker now and then and deletes every other one.
2. Data: every stored file has its row and every row its file (reap_orphans, as a dry run);
   every voice a clone was answered with exists unless it was deleted.
3. Faults: the tests in tests/reliability (Redis and Postgres stopping, a worker killed mid-job,
   the engine running out of memory, SIGTERM, storage failures), with the tests elsewhere that
   cover the same faults; they use the test database made from RELIABILITY_DATABASE_URL.
4. Hostile inputs: the tests in tests/security, counted by test id.
5. One user against the others (reliability/fairness.py), on a server of its own in embedded
   mode (no broker, the in-process cache): a greedy user with many keys against a polite one,
   cache flooding, slow clients, parallel clone jobs.

Exit status 0 only when the load held, every fault was survived, every hostile input was
handled and no data was lost.
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from pathlib import Path

import httpx

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from reliability import fairness  # noqa: E402
from reliability.load import LoadReport, run_load  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/csm_reliability"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
# The sign-in throttle's victim (step 5): a made-up account of the run's own database.
VICTIM_PASSWORD = "reliability-victim-password"
# The faults, and the tests that do them to the server.
FAULTS = {
    "Redis stops": ["tests/reliability/test_redis_outage.py"],
    "Postgres stops": ["tests/reliability/test_postgres_outage.py"],
    "worker killed mid-job": [
        "tests/reliability/test_worker_killed.py",
        "tests/reliability/test_job_redelivery.py",
    ],
    "engine fails (CUDA OOM)": [
        "tests/reliability/test_engine_failures.py",
        "tests/speech/test_speech_api.py::test_a_retryable_engine_failure_is_a_503",
    ],
    "SIGTERM": ["tests/reliability/test_graceful_shutdown.py"],
    "storage / database write fails": [
        "tests/reliability/test_storage_failures.py",
        "tests/ingest/test_ingest_jobs.py::"
        "test_a_failure_while_storing_the_voice_leaves_no_file_and_a_retry_succeeds",
        "tests/ingest/test_reap_orphans.py",
    ],
}
HOSTILE_TESTS = ["tests/security"]
TRANSCRIPT = (
    "The quick brown fox jumps over the lazy dog. "
    "A gentle breeze moved slowly through the tall grass by the river."
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def say(message: str) -> None:
    print(f"[reliability] {message}", file=sys.stderr, flush=True)


# --- Services ----------------------------------------------------------------------------------


def fresh_database(url: str) -> None:
    import psycopg

    parsed = urllib.parse.urlparse(url)
    name = parsed.path.lstrip("/")
    if "reliability" not in name:
        raise SystemExit(f"refusing to drop database {name!r}: its name must say 'reliability'")
    maintenance = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(maintenance, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def fresh_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url, socket_timeout=5).flushdb()


def service_env(database_url: str, redis_url: str, work: Path) -> dict[str, str]:
    (work / "no-csm-checkpoint").mkdir(exist_ok=True)
    (work / "var").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE"}}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        MEDIA_ROOT=str(work / "media"),
        VAR_DIR=str(work / "var"),
        SECRET_KEY="reliability-run-" + "x" * 40,
        DEFAULT_ENGINE="espeak",
        CSM_MODEL=str(work / "no-csm-checkpoint"),
        HF_HUB_OFFLINE="1",
        WATERMARK="false",
        LOG_LEVEL="WARNING",
        # Per key: paced clients stay under it, the greedy ones go over it.
        RATE_LIMIT_REQUESTS_PER_MINUTE="60",
        RATE_LIMIT_CONCURRENT="4",
        PYTHONUNBUFFERED="1",
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"manage.py {args[0]} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


MAKE_KEYS = """
import json
from django.contrib.auth import get_user_model
from accounts.services import api_key_create
User = get_user_model()
keys = {}
for name in [f"load{n}" for n in range(COUNT)] + ["greedy", "cloner"]:
    keys[name] = api_key_create(owner=User.objects.create_user(username=name))[1]
for name in ["polite", "flooder", "cloner2", "bystander"]:
    keys[name] = api_key_create(owner=User.objects.create_user(username=name))[1]
many = User.objects.create_user(username="greedyuser")
keys["greedyuser"] = [api_key_create(owner=many)[1] for _ in range(GREEDY_KEYS)]
User.objects.create_user(username="victim", password=VICTIM_PASSWORD)
print(json.dumps(keys))
"""

CHECK_DATA = """
import datetime, json
from django.core.files.storage import default_storage
from ingest.management.commands.reap_orphans import reap
from voices.models import Voice
made = json.loads(MADE)
report = reap(storage=default_storage, grace=datetime.timedelta(0), dry_run=True)
present = {str(pk) for pk in Voice.objects.filter(id__in=made).values_list("id", flat=True)}
print(json.dumps({
    "files_without_rows": report.removed + report.too_young,
    "rows_without_files": report.missing,
    "voices_lost": sorted(set(made) - present),
    "voices": Voice.objects.filter(kind="cloned").count(),
}))
"""


class Service:
    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                command,
                cwd=BASE_DIR,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait()


def wait_ready(url: str, service: Service) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if service.popen.poll() is not None:
            raise SystemExit(f"the server exited:\n{service.log.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not become ready in 120 s")


# --- Cloning alongside the load ------------------------------------------------------------------


async def clone_now_and_then(url: str, key: str, seconds: float) -> dict:
    """Clone a voice every few seconds through the worker; delete every other one."""
    made: list[str] = []
    deleted: list[str] = []
    failures: list[str] = []
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, timeout=120, headers=headers) as http:
        sample = await http.post(
            "/v1/audio/speech",
            json={
                "model": "tts-1",
                "voice": "alloy",
                "input": TRANSCRIPT,
                "response_format": "wav",
            },
        )
        sample.raise_for_status()
        deadline = time.monotonic() + seconds
        number = 0
        while time.monotonic() < deadline:
            number += 1
            response = await http.post(
                "/v1/voice-cloning/clone",
                data={"name": f"load-voice-{number}", "transcript": TRANSCRIPT, "consent": "true"},
                files={"audio_file": ("sample.wav", sample.content, "audio/wav")},
            )
            if response.status_code == 200:
                voice_id = response.json()["id"]
                made.append(voice_id)
                if number % 2 == 0:
                    gone = await http.delete(f"/v1/audio/voices/{voice_id}")
                    if gone.status_code == 200:
                        deleted.append(voice_id)
                    else:
                        failures.append(f"delete {gone.status_code}: {gone.text[:200]}")
            elif response.status_code not in {429, 503}:
                failures.append(f"clone {response.status_code}: {response.text[:200]}")
            await asyncio.sleep(4)
    return {"made": made, "deleted": deleted, "failures": failures}


# --- Tests ---------------------------------------------------------------------------------------


def run_tests(targets: list[str], env: dict[str, str], junit: Path) -> dict[str, list[str]]:
    """Run pytest on `targets`; each test id by its outcome (passed, failed, skipped)."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        *targets,
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        "-o",
        "junit_family=xunit1",
    ]
    say(f"running {' '.join(targets)}")
    subprocess.run(command, cwd=BASE_DIR, env=env, check=False, stdout=sys.stderr)
    outcomes: dict[str, list[str]] = defaultdict(list)
    if not junit.exists():
        return outcomes
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        test_id = f"{case.get('file') or case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            outcomes["failed"].append(test_id)
        elif case.find("skipped") is not None:
            outcomes["skipped"].append(test_id)
        else:
            outcomes["passed"].append(test_id)
    return outcomes


def fault_of(test_id: str) -> str | None:
    """The fault a test id (path::name[params]) belongs to."""
    path, _, name = test_id.partition("::")
    for fault, targets in FAULTS.items():
        for target in targets:
            file, _, test = target.partition("::")
            if path == file and (not test or name.split("[")[0] == test):
                return fault
    return None


# --- The table -----------------------------------------------------------------------------------


def seconds(value: float) -> str:
    return "n/a" if value != value else f"{value:.2f} s"  # NaN: nothing to measure


def table(
    load: LoadReport,
    cloning: dict,
    data: dict,
    faults: dict,
    hostile: dict,
    title: str,
    fair: list[fairness.Row],
) -> tuple[str, bool]:
    failures = load.failures()
    server_errors = sum(1 for o in failures if o.result == "server_error")
    incomplete = sum(1 for o in failures if o.result == "incomplete")
    unexpected = sum(1 for o in failures if o.result == "unexpected")
    load_held = load.held and not cloning["failures"]
    load_text = (
        f"{'yes' if load_held else 'NO'}: {load.requests} requests from {load.clients} clients "
        f"in {load.seconds:g} s; {load.count('accepted')} accepted and complete; "
        f"{load.count('refused')} refused with Retry-After "
        f"({', '.join(f'{k}: {n}' for k, n in sorted(load.refusal_codes().items())) or 'none'}); "
        f"5xx: {server_errors}; incomplete: {incomplete}; other: {unexpected}"
    )
    latency = (
        f"all accepted p50 {seconds(load.latency(0.5))}, p95 {seconds(load.latency(0.95))}; "
        f"speech p50 {seconds(load.latency(0.5, speech_only=True))}, "
        f"p95 {seconds(load.latency(0.95, speech_only=True))}; "
        f"TTFB p50 {seconds(load.latency(0.5, speech_only=True, ttfb=True))}, "
        f"p95 {seconds(load.latency(0.95, speech_only=True, ttfb=True))}"
    )
    clones = (
        f"{len(cloning['made'])} made by the worker, {len(cloning['deleted'])} deleted, "
        f"{len(cloning['failures'])} failed"
    )
    survived = [name for name, result in faults.items() if result["ok"]]
    fault_tests_passed = sum(len(r["passed"]) for r in faults.values())
    fault_tests = sum(r["total"] for r in faults.values())
    fault_text = f"{len(survived)}/{len(faults)} ({fault_tests_passed}/{fault_tests} tests): " + (
        "; ".join(
            f"{name} {'ok' if r['ok'] else 'FAILED'} ({len(r['passed'])}/{r['total']})"
            for name, r in faults.items()
        )
    )
    hostile_total = sum(len(v) for v in hostile.values())
    hostile_ok = hostile_total > 0 and not hostile["failed"]
    hostile_text = (
        f"{hostile_total} tried: {len(hostile['passed'])} passed, {len(hostile['failed'])} failed, "
        f"{len(hostile['skipped'])} skipped"
    )
    lost = (
        len(data["files_without_rows"]) + len(data["rows_without_files"]) + len(data["voices_lost"])
    )
    data_text = (
        f"{lost}: {len(data['rows_without_files'])} rows without files, "
        f"{len(data['files_without_rows'])} files without rows, "
        f"{len(data['voices_lost'])} accepted voices missing "
        f"({data['voices']} cloned voices stored)"
    )
    rows = [
        ("load held", load_text),
        ("latency", latency),
        ("clones under load", clones),
        ("faults survived", fault_text),
        ("hostile inputs tried", hostile_text),
        ("data lost", data_text),
        *((row.name, f"{'yes' if row.ok else 'NO'}: {row.text}") for row in fair),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [title, f"| {'check'.ljust(width)} | result |", f"|{'-' * (width + 2)}|--------|"]
    lines += [f"| {name.ljust(width)} | {text} |" for name, text in rows]
    ok = load_held and len(survived) == len(faults) and hostile_ok and lost == 0
    ok = ok and all(row.ok for row in fair)
    return "\n".join(lines), ok


def fairness_rows(
    database_url: str, work: Path, keys: dict, greedy_keys: list[str], seconds: float
) -> list[fairness.Row]:
    """The rows of step 5, from a server of their own in embedded mode."""
    env = service_env(database_url, "", work)
    del env["REDIS_URL"]
    env.update(MEDIA_ROOT=str(work / "media-embedded"), **fairness.SERVER_SETTINGS)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Service(
        "embedded server",
        [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env,
        work / "embedded-server.log",
    )
    try:
        wait_ready(url, server)
        sample = httpx.post(
            f"{url}/v1/audio/speech",
            json={
                "model": "tts-1",
                "voice": "alloy",
                "input": TRANSCRIPT,
                "response_format": "wav",
            },
            headers={"Authorization": f"Bearer {keys['cloner2']}"},
            timeout=120,
        )
        sample.raise_for_status()

        async def rows() -> list[fairness.Row]:
            say("fairness: slow clients")
            slow = await fairness.slow_clients(url)
            say("fairness: parallel clone jobs")
            clones = await fairness.parallel_clones(
                url, keys["cloner2"], keys["bystander"], sample.content, TRANSCRIPT, clones=12
            )
            say("fairness: cache flooding")
            flood = await fairness.cache_flooding(
                url, keys["flooder"], "victim", VICTIM_PASSWORD, entries=1000
            )
            say(f"fairness: greedy user for {seconds:g} s")
            greedy = await fairness.greedy_user(url, greedy_keys, keys["polite"], seconds)
            return [greedy, flood, slow, clones]

        return asyncio.run(rows())
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--greedy-clients", type=int, default=5)
    parser.add_argument(
        "--database-url", default=os.environ.get("RELIABILITY_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("RELIABILITY_REDIS_URL", DEFAULT_REDIS_URL)
    )
    parser.add_argument("--skip-tests", action="store_true", help="only the load and the data")
    parser.add_argument(
        "--fairness-seconds", type=float, default=30.0, help="how long the greedy user runs"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="csm-reliability-"))
    say(f"working in {work}")
    fresh_database(args.database_url)
    fresh_redis(args.redis_url)
    env = service_env(args.database_url, args.redis_url, work)
    manage(env, "migrate", "--noinput", "-v0")
    script = (
        MAKE_KEYS.replace("COUNT", str(max(1, args.clients - args.greedy_clients)))
        .replace("GREEDY_KEYS", str(fairness.GREEDY_KEYS))
        .replace("VICTIM_PASSWORD", repr(VICTIM_PASSWORD))
    )
    keys = json.loads(manage(env, "shell", "-c", script).strip().splitlines()[-1])
    greedy, cloner = keys.pop("greedy"), keys.pop("cloner")
    greedy_user_keys = keys.pop("greedyuser")
    others = {name: keys.pop(name) for name in ["polite", "flooder", "cloner2", "bystander"]}

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Service(
        "server",
        [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env,
        work / "server.log",
    )
    worker = Service(
        "worker",
        [
            *(sys.executable, "-m", "celery", "-A", "csmsite", "worker", "--concurrency=1"),
            *("--without-gossip", "--without-mingle", "--loglevel=WARNING"),
        ],
        env,
        work / "worker.log",
    )
    try:
        wait_ready(url, server)
        say(f"load: {args.clients} clients for {args.seconds:g} s on {url}")

        async def both():
            return await asyncio.gather(
                run_load(
                    url,
                    list(keys.values()),
                    greedy,
                    clients=args.clients,
                    greedy_clients=args.greedy_clients,
                    seconds=args.seconds,
                ),
                clone_now_and_then(url, cloner, args.seconds),
            )

        load, cloning = asyncio.run(both())
    finally:
        server.stop()
        worker.stop()
    for outcome in load.failures()[:10]:
        say(f"failure: {outcome}")
    for failure in cloning["failures"][:10]:
        say(f"cloning failure: {failure}")
    check = CHECK_DATA.replace("MADE", repr(json.dumps(sorted(set(cloning["made"])))))
    data = json.loads(manage(env, "shell", "-c", check).strip().splitlines()[-1])
    deleted = set(cloning["deleted"])
    data["voices_lost"] = [v for v in data["voices_lost"] if v not in deleted]

    fair = fairness_rows(args.database_url, work, others, greedy_user_keys, args.fairness_seconds)
    for row in fair:
        say(f"{row.name}: {row.text}")

    faults: dict[str, dict] = {}
    hostile: dict[str, list[str]] = {"passed": [], "failed": [], "skipped": []}
    if not args.skip_tests:
        test_env = {**env, "LOG_LEVEL": "WARNING"}
        targets = [t for ts in FAULTS.values() for t in ts]
        outcomes = run_tests(targets, test_env, work / "faults.xml")
        by_fault: dict[str, dict] = {
            name: {"passed": [], "failed": [], "skipped": []} for name in FAULTS
        }
        for outcome, ids in outcomes.items():
            for test_id in ids:
                fault = fault_of(test_id)
                if fault is not None:
                    by_fault[fault][outcome].append(test_id)
        for name, result in by_fault.items():
            total = sum(len(v) for v in result.values())
            faults[name] = {
                **result,
                "total": total,
                "ok": total > 0 and not result["failed"] and not result["skipped"],
            }
            for test_id in result["failed"] + result["skipped"]:
                say(f"{name}: not survived: {test_id}")
        hostile.update(run_tests(HOSTILE_TESTS, test_env, work / "hostile.xml"))
        for test_id in hostile["failed"]:
            say(f"hostile input not handled: {test_id}")

    title = (
        f"reliability: server + Celery worker on {urllib.parse.urlparse(args.database_url).path}"
        f" (Postgres) and {args.redis_url.rsplit('/', 1)[-1]} (Redis db), eSpeak NG"
    )
    text, ok = table(load, cloning, data, faults or {"(not run)": _not_run()}, hostile, title, fair)
    print(text)
    return 0 if ok else 1


def _not_run() -> dict:
    return {"passed": [], "failed": [], "skipped": [], "total": 0, "ok": False}


if __name__ == "__main__":
    sys.exit(main())
