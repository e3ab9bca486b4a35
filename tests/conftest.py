import itertools
import json
import os
import secrets
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parent.parent
QUESTIONS = json.loads((TEMPLATE / "cookiecutter.json").read_text())

# Text answers that differ from the defaults in every way the hooks allow: quotes and
# non-ASCII in free text, a slug unlike the name, a deep time zone, a long domain.
TEXT_ANSWERS = [
    {},
    {"project_name": "Order Desk", "description": 'Orders "and" refunds \\ more',
     "author_name": "Zoë O'Brien", "email": "ops+orders@mail.example.co.uk",
     "domain_name": "orders.example.org", "timezone": "Asia/Kolkata"},
    {"project_name": "ledger", "project_slug": "ledger_api", "author_name": "Ledger Team",
     "domain_name": "api.ledger.example", "timezone": "America/Argentina/Buenos_Aires"},
]


def pairwise(options):
    """Few combinations of {name: [choices]} that still pair every two choices somewhere."""
    names = list(options)
    uncovered = {((a, x), (b, y)) for a, b in itertools.combinations(names, 2)
                 for x in options[a] for y in options[b]}
    chosen = []
    while uncovered:
        best = max(itertools.product(*options.values()), key=lambda values: len(
            uncovered & set(itertools.combinations(zip(names, values, strict=True), 2))))
        uncovered -= set(itertools.combinations(zip(names, best, strict=True), 2))
        chosen.append(dict(zip(names, best, strict=True)))
    return chosen


def option_combinations(questions=QUESTIONS, limit=8):
    """Every combination of the choice options while there are at most `limit`, else pairwise
    and the one with every option `no`; each paired with a set of text answers, in turn."""
    choices = {name: value for name, value in questions.items()
               if isinstance(value, list) and not name.startswith("_")}
    every = [dict(zip(choices, values, strict=True))
             for values in itertools.product(*choices.values())]
    combinations = every if len(every) <= limit else pairwise(choices)
    # The smallest project, every option that has a `no` answered no: pairwise need not give it.
    smallest = {name: "no" if "no" in values else values[0] for name, values in choices.items()}
    if smallest not in combinations:
        combinations.append(smallest)
    return [TEXT_ANSWERS[number % len(TEXT_ANSWERS)] | combination
            for number, combination in enumerate(combinations)]


def generate(output_dir, **answers):
    return Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(output_dir),
                             extra_context=answers))


def tool_environment():
    """This environment, minus what would tie a generated project to the template's venv."""
    environ = dict(os.environ)
    for name in ("VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER",
                 "PYTEST_XDIST_TESTRUNUID", "PYTEST_XDIST_WORKER_COUNT"):
        environ.pop(name, None)
    return environ


def run(command, cwd, env=None, timeout=600):
    """Run a command; fail the test with its whole output when it exits non-zero."""
    result = subprocess.run(command, cwd=cwd, env=env or tool_environment(), text=True,
                            capture_output=True, timeout=timeout, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {result.returncode}\n"
                    f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL 17 server in a container, one per test worker; returns its base URL."""
    password = secrets.token_hex(16)
    name = f"shipshape-test-postgres-{os.getpid()}"
    subprocess.run(["docker", "run", "--detach", "--rm", "--name", name,
                    "--env", f"POSTGRES_PASSWORD={password}", "--publish", "127.0.0.1::5432",
                    "postgres:17"], check=True, capture_output=True)
    try:
        deadline = time.monotonic() + 90
        while subprocess.run(["docker", "exec", name, "pg_isready", "-h", "127.0.0.1", "-q"],
                             check=False).returncode != 0:
            assert time.monotonic() < deadline, "PostgreSQL did not start in 90 s"
            time.sleep(0.5)
        port = subprocess.run(["docker", "port", name, "5432/tcp"], check=True, text=True,
                              capture_output=True).stdout.split(":")[-1].strip()
        yield f"postgres://postgres:{password}@127.0.0.1:{port}"
    finally:
        subprocess.run(["docker", "rm", "--force", name], check=False, capture_output=True)


@pytest.fixture(scope="session")
def kubo():
    """A real Kubo node (ipfs/kubo) in a container, one per test worker; returns its RPC API URL.
    Configured as compose.yaml runs it (deploy/scripts/ipfs-config.sh); the RPC API published on
    127.0.0.1 only."""
    name = f"shipshape-test-kubo-{os.getpid()}"
    config = TEMPLATE / "{{cookiecutter.project_slug}}" / "deploy" / "scripts" / "ipfs-config.sh"
    subprocess.run(["docker", "run", "--detach", "--rm", "--name", name,
                    "--volume", f"{config}:/container-init.d/ipfs-config.sh:ro",
                    "--publish", "127.0.0.1::5001", "ipfs/kubo:release"],
                   check=True, capture_output=True)
    try:
        port = subprocess.run(["docker", "port", name, "5001/tcp"], check=True, text=True,
                              capture_output=True).stdout.split(":")[-1].strip()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while not answers(f"{url}/api/v0/version"):
            assert time.monotonic() < deadline, "Kubo did not start in 90 s"
            time.sleep(0.5)
        yield url
    finally:
        subprocess.run(["docker", "rm", "--force", name], check=False, capture_output=True)


def answers(url):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5):
            return True
    except OSError:
        return False
