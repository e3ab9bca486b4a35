"""The container tier, background tasks (issue 25): on the production stack of a project with
tasks=yes, a task enqueued through a page (the password-reset mail) runs in the worker and is
retried against an SMTP server that refuses it first; a worker stopped mid-task finishes it; a
worker killed mid-task leaves it retried or failed, never RUNNING; a database restarted under
load loses no task; the schedule fires once per tick with two workers; the worker's health check
tells an idle worker from a stuck one. And the development worker: healthy, reloaded in place
on a code change.

One stack for the whole module (building and starting it is most of the cost), with two things
only tests add, in a compose file of their own beside deploy/compose.yaml: an SMTP sink on the
stack's network (tests/smtp_sink.py, TLS with a certificate the test makes and the app trusts
through SSL_CERT_FILE), and a module of test-only tasks mounted into web and worker.
"""

import email
import email.policy
import json
import re
import secrets
import subprocess
import textwrap
import time
from pathlib import Path

import httpx
import pytest
import yaml

from test_containers import Project, caddy_trust, docker, eventually, health, running

# Its own group: a project of its own (tasks=yes, no IPFS, no notebooks) whose images no other
# module builds; the base layers come from the engine's build cache whichever worker built them.
pytestmark = pytest.mark.xdist_group("containers-tasks")
ANSWERS = {"project_name": "Task Desk", "tasks": "yes", "ipfs": "no", "notebooks": "no"}
SINK = Path(__file__).parent / "smtp_sink.py"
SMTP_FAILS = 2  # the password-reset mail is refused twice, then accepted (its policy: 5 attempts)
TICK = 20  # seconds between the test schedule's ticks: each worker looks every 10 s
LOAD = 600  # tasks enqueued before the database restarts under them (some seconds' work)
# How long a killed worker's task may stay RUNNING: its heartbeat goes stale after 30 s, and
# another worker recovers it at its next look (every heartbeat, 10 s), with some slack.
RECOVERY = 75
TASKS = "django_tasks_database_dbtaskresult"  # the app label: django_tasks_database


def tasks_module(slug):
    """Tasks that only these tests enqueue (mounted at /app/tasks_under_test.py)."""
    return textwrap.dedent(f"""\
        import time

        from django.db import connection
        from django.tasks import task

        from {slug}.worker.retries import retry


        @task
        def slow(seconds, mark):
            time.sleep(seconds)
            return mark


        @retry(attempts=3, backoff=2.0)
        @task
        def slow_with_retries(seconds, mark):
            time.sleep(seconds)
            return mark


        @task
        def tick():
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO tasks_test_ticks DEFAULT VALUES")


        # The worker's --schedule, in test_the_schedule_fires_once_per_tick_with_two_workers.
        SCHEDULE = [("*/{TICK} * * * * *", tick)]


        @retry(attempts=5, backoff=1.5)
        @task
        def record(number):
            # Every run leaves a row: a task run twice shows twice, a lost one not at all.
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO tasks_test_runs (number) VALUES (%s)", [number])
            time.sleep(0.02)
            return number
        """)


def certificates(directory):
    """A CA and the sink's certificate for the name `smtp` (what Python 3.13's strict
    verification accepts: CA constraints, key usages, key identifiers)."""

    def openssl(*arguments):
        subprocess.run(["openssl", *arguments], cwd=directory, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-days", "2", "-subj", "/CN=shipshape test CA", "-keyout", "ca.key", "-out", "ca.pem",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", "/CN=smtp", "-keyout", "smtp.key", "-out", "smtp.csr")
    (directory / "smtp.ext").write_text(
        "subjectAltName=DNS:smtp\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n")
    openssl("x509", "-req", "-in", "smtp.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", "smtp.pem", "-extfile", "smtp.ext")
    for path in directory.iterdir():
        path.chmod(0o644)  # read by the sink (root) and the app (uid 10001) through the mounts


def added_services(slug, sink, module):
    """The compose file these tests add: the SMTP sink, the test-only tasks in web and worker,
    the sink's CA trusted by Python's ssl there (SSL_CERT_FILE)."""
    app = {"environment": {"SSL_CERT_FILE": "/sink/ca.pem"},
           "volumes": [f"{sink}:/sink:ro", f"{module}:/app/tasks_under_test.py:ro"]}
    return {"services": {
        "smtp": {
            "image": "python:3.13-slim",
            "init": True,
            "command": ["python", "/sink/smtp_sink.py"],
            "environment": {"SMTP_FAILS": str(SMTP_FAILS), "PYTHONUNBUFFERED": "1"},
            "volumes": [f"{sink}:/sink:ro"],
            "healthcheck": {"test": ["CMD", "python", "-c", "import socket; "
                                     "socket.create_connection(('127.0.0.1', 2525), 2)"],
                            "interval": "2s", "start_period": "30s", "start_interval": "500ms"},
        },
        "web": app,
        "worker": app | {
            "depends_on": {"smtp": {"condition": "service_healthy"}},
            # The project's schedule, unless a test names its own (TEST_SCHEDULE).
            "command": ["python", "manage.py", "worker", "--schedule",
                        f"${{TEST_SCHEDULE:-{slug}.worker.schedule.SCHEDULE}}"]},
    }}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The project, generated with tasks=yes; only its production image is built."""
    root = tmp_path_factory.mktemp("tasks")
    generated = Project(ANSWERS, root)
    prod = generated.prod
    sink = root / "sink"
    sink.mkdir()
    certificates(sink)
    (sink / "smtp_sink.py").write_text(SINK.read_text())
    (sink / "smtp_sink.py").chmod(0o644)
    module = root / "tasks_under_test.py"
    module.write_text(tasks_module(generated.slug))
    module.chmod(0o644)
    (prod.path / "deploy" / "compose.test-tasks.yaml").write_text(
        yaml.safe_dump(added_services(generated.slug, sink, module), sort_keys=False))
    prod.files = [*prod.files, "deploy/compose.test-tasks.yaml"]
    env_file = prod.path / "deploy" / ".env"
    env_file.write_text(env_file.read_text().replace("EMAIL_URL=smtp://mail.invalid",
                                                     "EMAIL_URL=smtp://smtp:2525"))
    assert "EMAIL_URL=smtp://smtp:2525" in env_file.read_text()
    try:
        prod.compose("build", timeout=1200)
        yield generated
    finally:
        generated.remove_images()


@pytest.fixture(scope="module")
def prod(project):
    with running(project.prod) as stack:
        stack.exec("web", "python", "manage.py", "shell", "-v", "0", "-c",
                   "from django.db import connection; connection.cursor().execute("
                   "'CREATE TABLE tasks_test_runs (number integer NOT NULL); "
                   "CREATE TABLE tasks_test_ticks (at timestamptz NOT NULL DEFAULT now())')")
        yield stack


@pytest.fixture
def worker(prod):
    """The stack with one worker, running and healthy, whatever the test before left."""
    prod.compose("up", "--detach", "--wait", "--scale", "worker=1", "worker", timeout=300)
    return prod


# --- reading and writing the stack's state ---

def sql(stack, query, check=True):
    """Rows of a query, as the database's superuser (the db service's own psql); with
    check=False, None while the database does not answer."""
    user = stack.path.name
    answer = stack.exec("db", "psql", "--username", user, "--dbname", user, "-AtX",
                        "--field-separator", "\t", "--command", query, check=check)
    if answer.returncode != 0:
        return None
    return [tuple(line.split("\t")) for line in answer.stdout.splitlines()]


def django(stack, script, service="web"):
    return stack.exec(service, "python", "manage.py", "shell", "-v", "0", "-c", script,
                      timeout=300).stdout.strip()


def enqueue(stack, *calls):
    """The ids of the results of tasks_under_test's tasks enqueued with these arguments:
    ("slow", 10, "mark") is slow.enqueue(10, "mark")."""
    script = "import tasks_under_test as t\n" + "\n".join(
        f"print(t.{name}.enqueue(*{arguments!r}).id)" for name, *arguments in calls)
    return django(stack, script).split()


def result(stack, task_id):
    """(status, exception class path, traceback, worker ids) of one task result."""
    ((row,),) = sql(stack, "SELECT row_to_json(r) FROM (SELECT status, exception_class_path, "
                           f"traceback, worker_ids FROM {TASKS} WHERE id = '{task_id}') r")
    return tuple(json.loads(row).values())  # one line: the traceback's newlines escaped


def status(stack, task_id):
    return result(stack, task_id)[0]


def health_of(stack, service="worker"):
    return stack.inspect(service)["State"]["Health"]


def replicas(stack, service="worker"):
    return stack.compose("ps", "--quiet", service).stdout.split()


# --- development ---

def test_the_dev_worker_is_healthy_and_reloads_on_a_code_change(project):
    """compose.yaml's worker, before the production stack starts: the dev image, healthy, and
    restarted in place (its reloader, not Docker) when a file of the project changes."""
    dev = project.dev
    dev.compose("build", timeout=1200)
    with running(dev):
        assert health(dev)["worker"] == ("running", "healthy", 0)
        container = dev.container("worker")
        before = dev.inspect("worker")["State"]

        def workers_started():  # each start logs its ID (whichever stream the settings use)
            logs = docker("logs", container)
            return set(re.findall(r"Starting worker worker_id=([\w-]+)",
                                  logs.stdout + logs.stderr))

        assert len(workers_started()) == 1
        tasks = dev.path / dev.path.name / "worker" / "tasks.py"
        original = tasks.read_text()
        try:
            tasks.write_text(original + "\n# edited on the host\n")
            eventually(lambda: len(workers_started()) == 2, timeout=60)
        finally:
            tasks.write_text(original)
        logs = docker("logs", container)
        assert "worker/tasks.py changed, reloading" in logs.stdout + logs.stderr
        after = dev.inspect("worker")["State"]
        assert (after["StartedAt"], after["Running"]) == (before["StartedAt"], True)
        eventually(lambda: dev.exec("worker", "python", "-m", f"{project.slug}.worker.health",
                                    check=False).returncode == 0, timeout=30)


# --- production: the tests, in the order they run on the one stack ---

def test_the_worker_is_healthy_when_idle_and_runs_as_web_does(worker):
    state = health_of(worker)
    assert state["Status"] == "healthy", state
    probe = worker.inspect("worker")["Config"]["Healthcheck"]["Test"]
    assert probe == ["CMD", "python", "-m", f"{worker.path.name}.worker.health"]
    assert worker.exec("worker", *probe[1:], check=False).returncode == 0
    # Hardened as web is: the same user, read-only root, no capabilities, a memory limit.
    process = worker.inspect("worker")
    host = process["HostConfig"]
    assert (host["ReadonlyRootfs"], host["CapDrop"], host["Memory"] > 0) == (True, ["ALL"], True)
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert worker.exec("worker", "id", "-u").stdout.strip() == "10001"
    assert process["Config"]["Cmd"][:3] == ["python", "manage.py", "worker"]  # + test's --schedule
    services = yaml.safe_load((worker.path / "deploy" / "compose.yaml").read_text())["services"]
    service = services["worker"]
    assert service["command"] == ["python", "manage.py", "worker"]
    assert service["stop_grace_period"] == "60s"
    # Web's image and environment (x-app), so what web enqueues the worker can run.
    assert (service["build"], service["env_file"], service["environment"]) == (
        services["web"]["build"], services["web"]["env_file"], services["web"]["environment"])
    assert "ports" not in service


def sink_log(stack):
    return docker("logs", stack.container("smtp")).stdout


def signed_out_client(stack):
    """An HTTPS client of the site through Caddy, on 127.0.0.1, as a browser of localhost."""
    port = stack.port("caddy", 443)
    return httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=caddy_trust(stack),
                        timeout=60, headers={"Host": f"localhost:{port}",
                                             "Referer": f"https://localhost:{port}/"},
                        event_hooks={"request": [lambda request: request.extensions.update(
                            sni_hostname="localhost")]})


def sign_in(client, username, password):
    client.get("/admin/login/").raise_for_status()
    response = client.post("/admin/login/?next=/admin/", data={
        "username": username, "password": password,
        "csrfmiddlewaretoken": client.cookies["csrftoken"]})
    assert response.status_code == 302, response.text[:2000]


def delivered(stack):
    """The first message the sink accepted: (attempt number, parsed message), or None."""
    found = re.search(r"^MESSAGE attempt (\d+)\n(.*?)\nEND MESSAGE$", sink_log(stack),
                      re.M | re.S)
    if found:
        return int(found[1]), email.message_from_string(found[2], policy=email.policy.default)
    return None


def test_the_password_reset_mail_is_sent_by_the_worker_after_smtp_refuses_it(worker):
    address = f"member-{secrets.token_hex(4)}@example.com"
    password = secrets.token_urlsafe(16)
    django(worker, "from django.contrib.auth import get_user_model; users = get_user_model()."
                   f"objects; users.create_user('member', {address!r}, 'unused-0123456789'); "
                   f"users.create_superuser('ada', 'ada@example.com', {password!r})")
    with signed_out_client(worker) as client:
        eventually(lambda: client.get("/accounts/password_reset/").status_code == 200)
        response = client.post("/accounts/password_reset/", data={
            "email": address, "csrfmiddlewaretoken": client.cookies["csrftoken"]})
        # The page answers at once: the mail is a task, whose first attempts the server refuses.
        assert "MESSAGE attempt" not in sink_log(worker)
        assert response.status_code == 302, response.text[:2000]
        assert response.headers["location"] == "/accounts/password_reset/done/"
        # Refused twice by the server, retried by the worker, delivered on the third attempt.
        attempt, message = eventually(lambda: delivered(worker), timeout=90)
        log = sink_log(worker)
        assert log.count("REFUSED attempt") == SMTP_FAILS, log
        assert attempt == SMTP_FAILS + 1, log
        assert message["To"] == address
        body = message.get_body(("plain",)).get_content()
        link = re.search(r"https://localhost:\d+(/accounts/reset/\S+/)", body)
        assert link, body
        # The link in the mail works: it leads to the form that sets a new password.
        assert client.get(link[1]).status_code == 302
        # Its result shows in the admin: one task, successful.
        sign_in(client, "ada", password)
        page = client.get("/admin/django_tasks_database/dbtaskresult/")
        assert page.status_code == 200
        rows = re.findall(r"<tr[^>]*>.*?</tr>", page.text, re.S)
        mail_rows = [row for row in rows if "send_mail" in row]
        assert len(mail_rows) == 1 and "Successful" in mail_rows[0], rows
    # The row itself: successful, run by a worker (the one that delivered it).
    ((state, workers),) = sql(worker, f"SELECT status, worker_ids::text FROM {TASKS} WHERE "
                                      "task_path LIKE '%.worker.mail.%'")
    assert state == "SUCCESSFUL" and workers != "[]", workers
    # The worker logs as web does in production (docs/observability.md): one JSON object a
    # line; each refused attempt an ERROR line with its traceback in one field.
    logs = docker("logs", worker.container("worker"))
    lines = [json.loads(line) for line in (logs.stdout + logs.stderr).splitlines() if line]
    attempts = [line for line in lines if line["logger"] == "django.tasks"
                and ".worker.mail.send_mail" in line["message"]]
    failed = [line for line in attempts if "state=FAILED" in line["message"]]
    assert [line["level"] for line in failed] == ["ERROR"] * SMTP_FAILS, attempts
    assert all("Traceback" in line["exception"] for line in failed), failed


def test_a_stopped_worker_finishes_the_task_it_is_running(worker):
    (task_id,) = enqueue(worker, ("slow", 8, "finished"))
    eventually(lambda: status(worker, task_id) == "RUNNING", timeout=30)
    started = time.monotonic()
    worker.compose("stop", "worker", timeout=120)  # SIGTERM, then up to 60 s
    stopped = time.monotonic() - started
    assert status(worker, task_id) == "SUCCESSFUL"
    assert sql(worker, f"SELECT return_value::text FROM {TASKS} WHERE id = '{task_id}'") \
        == [('"finished"',)]
    state = worker.inspect("worker")["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 0), state  # not killed at 60 s
    assert stopped < 30, stopped  # it waited for the task, not for the grace period's end


def test_a_killed_workers_task_is_retried_or_failed_never_left_running(worker):
    """Two workers, each SIGKILLed in the middle of a task: the task with attempts left runs
    again and succeeds; the one without is marked failed with WorkerLost."""
    worker.compose("up", "--detach", "--wait", "--scale", "worker=2", "worker", timeout=300)
    retried, lost = enqueue(worker, ("slow_with_retries", 6, "second run"),
                            ("slow", 6, "never finished"))
    eventually(lambda: {status(worker, retried), status(worker, lost)} == {"RUNNING"},
               timeout=30)
    worker.compose("kill", "--signal", "SIGKILL", "worker")
    killed_at = time.monotonic()
    assert {status(worker, retried), status(worker, lost)} == {"RUNNING"}
    worker.compose("up", "--detach", "--wait", "--scale", "worker=1", "worker", timeout=300)

    def settled():
        return {status(worker, retried), status(worker, lost)} & {"RUNNING", "READY"} == set()

    eventually(settled, timeout=RECOVERY + 20, interval=2)
    recovered = time.monotonic() - killed_at
    assert result(worker, retried)[0] == "SUCCESSFUL"
    assert sql(worker, f"SELECT return_value::text FROM {TASKS} WHERE id = '{retried}'") \
        == [('"second run"',)]
    state, exception, traceback, workers = result(worker, lost)
    assert (state, exception) == ("FAILED", f"{worker.path.name}.worker.WorkerLost"), traceback
    assert exception in traceback and re.search(r"\d{4}-\d\d-\d\dT", traceback), traceback
    assert workers[-1] in traceback, (workers, traceback)  # which worker, and when
    assert recovered < RECOVERY + 20, recovered


def test_a_database_restart_under_load_loses_no_task(worker):
    worker.compose("up", "--detach", "--wait", "--scale", "worker=2", "worker", timeout=300)
    sql(worker, "TRUNCATE tasks_test_runs")
    ids = enqueue(worker, *(("record", number) for number in range(LOAD)))
    assert len(ids) == LOAD
    eventually(lambda: int(sql(worker, "SELECT count(*) FROM tasks_test_runs")[0][0]) >= 20,
               timeout=60, interval=0.2)
    worker.compose("restart", "db", timeout=120)
    in_list = ", ".join(f"'{task_id}'" for task_id in ids)

    def statuses():  # None while the database starts again
        done = sql(worker, f"SELECT status, count(*) FROM {TASKS} WHERE id IN ({in_list}) "
                           "GROUP BY status", check=False)
        return None if done is None else dict(done)

    # The restart came under load: tasks were still to run when the database came back.
    assert eventually(statuses, timeout=60).get("SUCCESSFUL") != str(LOAD)
    try:
        eventually(lambda: (statuses() or {}).get("SUCCESSFUL") == str(LOAD),
                   timeout=RECOVERY + 120, interval=2)
    finally:
        counts = sql(worker, f"SELECT status, count(*) FROM {TASKS} WHERE id IN ({in_list}) "
                             "GROUP BY status")
    assert dict(counts) == {"SUCCESSFUL": str(LOAD)}, counts
    runs = dict(sql(worker, "SELECT number, count(*) FROM tasks_test_runs GROUP BY number"))
    assert set(runs) == {str(number) for number in range(LOAD)}  # every task ran
    twice = {number: count for number, count in runs.items() if int(count) > 1}
    assert all(int(count) <= 5 for count in twice.values()), twice  # its policy: 5 attempts
    assert len(twice) <= 2, twice  # at most the ones under way when the database went


def test_the_worker_health_check_tells_a_stuck_worker_from_an_idle_one(worker):
    probe = ["python", "-m", f"{worker.path.name}.worker.health"]
    assert worker.exec("worker", *probe, check=False).returncode == 0
    worker.compose("kill", "--signal", "SIGSTOP", "worker")
    try:
        failed = eventually(lambda: (check := worker.exec("worker", *probe, check=False))
                            .returncode != 0 and check, timeout=90, interval=2)
    finally:
        worker.compose("kill", "--signal", "SIGCONT", "worker")
    (line,) = failed.stderr.strip().splitlines()
    assert "heartbeat" in line, line
    eventually(lambda: worker.exec("worker", *probe, check=False).returncode == 0, timeout=30)


def test_the_schedule_fires_once_per_tick_with_two_workers(worker):
    """Two workers on a schedule of their own (a tick every TICK seconds): each tick's task is
    enqueued and run exactly once, and no tick is missed."""
    project_env = worker.env
    worker.env = project_env | {"TEST_SCHEDULE": "tasks_under_test.SCHEDULE"}
    try:
        worker.compose("up", "--detach", "--wait", "--scale", "worker=2", "worker", timeout=300)
        assert len(replicas(worker)) == 2
        time.sleep(3.5 * TICK)
    finally:
        worker.env = project_env
    # Back to the project's schedule (nothing due): no more test ticks.
    worker.compose("up", "--detach", "--wait", "--scale", "worker=1", "worker", timeout=300)
    path = "tasks_under_test.tick"

    def results():
        rows = sql(worker, f"SELECT id::text, status FROM {TASKS} WHERE task_path = '{path}'")
        return rows if all(state in ("SUCCESSFUL", "FAILED") for _, state in rows) else None

    finished = dict(eventually(results, timeout=60, interval=2))
    ticks = sql(worker, "SELECT extract(epoch FROM tick)::bigint, task_result_id FROM "
                        f"worker_tick WHERE task_path = '{path}' ORDER BY tick")
    runs = int(sql(worker, "SELECT count(*) FROM tasks_test_ticks")[0][0])
    assert len(ticks) >= 3, ticks
    # One task per tick, each run once, successfully.
    assert sorted(finished) == sorted(task_id for _, task_id in ticks), (finished, ticks)
    assert set(finished.values()) == {"SUCCESSFUL"}, finished
    assert runs == len(ticks), (runs, ticks)
    # On the schedule's beat, with none missed: each worker looks more often than it ticks.
    times = [int(at) for at, _ in ticks]
    assert all(at % TICK == 0 for at in times), times
    assert all(later - earlier == TICK for earlier, later in zip(times, times[1:])), times
