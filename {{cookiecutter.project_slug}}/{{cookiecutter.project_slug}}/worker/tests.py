"""The worker, as it runs: real `manage.py worker` processes against the test database, real
signals, a real (small) SMTP server. The tasks below are what those workers run."""

import json
import os
import signal
import socketserver
import ssl
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.tasks import TaskContext, task
from django.tasks.base import TaskResultStatus
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from {{ cookiecutter.project_slug }}.worker import health, retries, scheduler
from {{ cookiecutter.project_slug }}.worker.mail import QueuedMailBackend, send_mail
from {{ cookiecutter.project_slug }}.worker.models import Tick
from {{ cookiecutter.project_slug }}.worker.retries import retry
from {{ cookiecutter.project_slug }}.worker.tasks import prune_task_results

MODULE = __name__


@task
def add(a, b):
    return a + b


@retry(attempts=3, backoff=1.5)
@task
def fails_each_time(log):
    with open(log, "a") as file:
        file.write(f"{time.time()}\n")
    raise ValueError("this task always fails")


@task
def sleeps(seconds):
    time.sleep(seconds)
    return "slept"


@retry(attempts=2, backoff=1)
@task(takes_context=True)
def sleeps_on_its_first_attempt(context: TaskContext):
    if context.attempt == 1:
        time.sleep(60)
    return context.attempt


@task
def ticks():
    return "tick"


# Each second: the schedule that test_two_workers_enqueue_each_tick_once gives its workers.
EVERY_SECOND = [("* * * * * *", ticks)]


def wait_for(condition, timeout=20, what="the condition"):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.1)
    return found


def status(result):
    return DBTaskResult.objects.get(id=result.id).status


class Workers:
    """`manage.py worker` processes on the test database, with short intervals: stopped (and
    their output shown, on failure) at the end of the test."""

    def __init__(self, directory):
        self.directory, self.processes = directory, []
        db = connection.settings_dict
        self.database_url = (f"postgres://{quote(db['USER'])}:{quote(db['PASSWORD'])}@"
                             f"{db['HOST']}:{db['PORT']}/{db['NAME']}")

    def start(self, *arguments, env=()):
        number = len(self.processes)
        heartbeat_file = self.directory / f"heartbeat-{number}.json"
        log = open(self.directory / f"worker-{number}.log", "w")  # noqa: SIM115 - closed at stop
        process = subprocess.Popen(
            [sys.executable, "manage.py", "worker", "--no-reload", "--no-startup-delay",
             "--interval", "0.2", "--heartbeat", "0.5", "--lost-after", "2",
             "--heartbeat-file", str(heartbeat_file), *arguments],
            cwd=django_settings.BASE_DIR, stdout=log, stderr=subprocess.STDOUT,
            env=os.environ | {"DATABASE_URL": self.database_url, **dict(env)})
        process.heartbeat_file, process.log = heartbeat_file, log
        self.processes.append(process)
        wait_for(heartbeat_file.exists, what=f"worker {number} to start")
        return process

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()
            process.log.close()

    def output(self):
        return "\n".join(Path(process.log.name).read_text() for process in self.processes)


@pytest.fixture
def workers(transactional_db, tmp_path):
    started = Workers(tmp_path)
    yield started
    started.stop()
    print(started.output())  # shown when the test fails


def test_a_task_enqueued_runs_in_the_worker_and_its_result_is_recorded(workers):
    workers.start()
    result = add.enqueue(2, 3)
    wait_for(lambda: status(result) == TaskResultStatus.SUCCESSFUL, what="the task to run")
    result.refresh()
    assert result.return_value == 5
    assert len(result.worker_ids) == 1


def test_a_failing_task_is_recorded_and_retried_with_backoff_up_to_its_limit(workers, tmp_path):
    workers.start()
    log = tmp_path / "attempts"
    result = fails_each_time.enqueue(str(log))
    wait_for(lambda: status(result) == TaskResultStatus.FAILED
             and len(DBTaskResult.objects.get(id=result.id).worker_ids) == 3,
             what="the third attempt to fail")
    time.sleep(2)  # no fourth attempt
    row = DBTaskResult.objects.get(id=result.id)
    assert (row.status, len(row.worker_ids)) == (TaskResultStatus.FAILED, 3)
    assert row.exception_class_path == "builtins.ValueError"
    assert row.traceback.startswith("Traceback")
    assert "ValueError: this task always fails" in row.traceback
    first, second, third = map(float, log.read_text().split())
    # backoff ** attempt seconds, jittered by at most a quarter: 1.5 s, then 2.25 s (plus the
    # worker's poll interval, and a loaded machine's delays).
    assert 1.5 * 0.75 <= second - first <= 1.5 * 1.25 + 5
    assert 2.25 * 0.75 <= third - second <= 2.25 * 1.25 + 5


def test_a_failed_attempt_with_attempts_left_is_ready_again_with_its_traceback(transactional_db):
    result = fails_each_time.enqueue("/dev/null")
    row = DBTaskResult.objects.get(id=result.id)
    row.claim("a-worker")
    try:
        fails_each_time.call("/dev/null")
    except ValueError as error:
        row.set_failed(error)
    before = timezone.now()
    retries.after_attempt(row)
    row.refresh_from_db()
    assert row.status == TaskResultStatus.READY
    assert "this task always fails" in row.traceback
    assert before + timedelta(seconds=1.5 * 0.75) <= row.run_after \
        <= timezone.now() + timedelta(seconds=1.5 * 1.25)


def test_retry_goes_above_task_and_wants_a_sane_policy():
    with pytest.raises(TypeError, match="@retry goes above @task"):
        retry(attempts=2)(lambda: None)
    with pytest.raises(ValueError, match="attempts must be a whole number"):
        retry(attempts=0)
    assert retries.policy(f"{MODULE}.add") == retries.ONE_ATTEMPT
    assert retries.policy(f"{MODULE}.fails_each_time").attempts == 3
    assert retries.policy("gone.module.task") == retries.ONE_ATTEMPT


@pytest.mark.django_db
@pytest.mark.parametrize("argument", [datetime(2030, 1, 1), object(), {1, 2}, b"\xff"])
def test_an_argument_that_is_not_json_is_refused_at_enqueue(argument):
    with pytest.raises((TypeError, ValueError), match="Unsupported (type|value)"):
        add.enqueue(argument, 1)
    assert not DBTaskResult.objects.exists()


def test_sigterm_lets_the_running_task_finish_then_exits_0(workers):
    worker = workers.start()
    result = sleeps.enqueue(2)
    wait_for(lambda: status(result) == TaskResultStatus.RUNNING, what="the task to start")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == 0
    row = DBTaskResult.objects.get(id=result.id)
    assert (row.status, row.return_value) == (TaskResultStatus.SUCCESSFUL, "slept")


def test_sigterm_stops_an_idle_worker_at_once(workers):
    worker = workers.start()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=5) == 0


def test_a_task_whose_worker_is_killed_is_run_again_by_another(workers):
    first = workers.start()
    result = sleeps_on_its_first_attempt.enqueue()
    wait_for(lambda: status(result) == TaskResultStatus.RUNNING, what="the task to start")
    first.kill()
    first.wait()
    workers.start()
    wait_for(lambda: status(result) == TaskResultStatus.SUCCESSFUL, what="the second attempt")
    row = DBTaskResult.objects.get(id=result.id)
    assert row.return_value == 2
    assert len(set(row.worker_ids)) == 2


def test_a_task_whose_worker_is_killed_without_attempts_left_fails_with_worker_lost(workers):
    first = workers.start()
    result = sleeps.enqueue(60)
    wait_for(lambda: status(result) == TaskResultStatus.RUNNING, what="the task to start")
    lost_worker = DBTaskResult.objects.get(id=result.id).worker_ids[-1]
    first.kill()
    first.wait()
    second = workers.start()
    wait_for(lambda: status(result) == TaskResultStatus.FAILED, what="the task to be recovered")
    row = DBTaskResult.objects.get(id=result.id)
    assert row.exception_class_path == "{{ cookiecutter.project_slug }}.worker.WorkerLost"
    assert f"its worker {lost_worker} stopped" in row.traceback
    assert json.loads(second.heartbeat_file.read_text())["worker_id"] in row.traceback


def test_two_workers_enqueue_each_tick_once(workers):
    for _ in range(2):
        workers.start("--schedule", f"{MODULE}.EVERY_SECOND")
    time.sleep(4)
    workers.stop()
    results = DBTaskResult.objects.filter(task_path=f"{MODULE}.ticks")
    ticks = Tick.objects.filter(task_path=f"{MODULE}.ticks")
    assert ticks.count() >= 3
    assert results.count() == ticks.count() == len({tick.tick for tick in ticks})
    assert {str(result.id) for result in results} == {tick.task_result_id for tick in ticks}


@pytest.mark.django_db
def test_a_tick_is_enqueued_once_and_only_within_the_catch_up_window():
    at = timezone.make_aware(datetime(2030, 1, 1, 3, 30, 5))
    schedule = [("30 3 * * *", prune_task_results)]
    assert len(scheduler.enqueue_due(schedule, at, taken={})) == 1
    assert scheduler.enqueue_due(schedule, at + timedelta(minutes=5), taken={}) == []
    late = at + scheduler.CATCH_UP + timedelta(minutes=1)
    assert scheduler.enqueue_due(schedule, late, taken={}) == []
    assert scheduler.enqueue_due(schedule, at + timedelta(days=1), taken={})


def test_the_default_schedule_loads():
    assert scheduler.load("{{ cookiecutter.project_slug }}.worker.schedule.SCHEDULE")


@pytest.mark.django_db
def test_prune_task_results_keeps_tasks_keep_days(settings):
    settings.TASKS_KEEP_DAYS = 30
    old, recent, unfinished = (add.enqueue(1, 1) for _ in range(3))
    DBTaskResult.objects.filter(id__in=[old.id, recent.id]).update(
        status=TaskResultStatus.SUCCESSFUL, finished_at=timezone.now() - timedelta(days=29))
    DBTaskResult.objects.filter(id=old.id).update(finished_at=timezone.now() - timedelta(days=31))
    assert prune_task_results.call() == 1
    assert set(map(str, DBTaskResult.objects.values_list("id", flat=True))) == {
        recent.id, unfinished.id}


def make_certificate(directory):
    """A self-signed certificate for 127.0.0.1, which the worker trusts (SSL_CERT_FILE)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


class SMTPServer(socketserver.ThreadingTCPServer):
    """Just enough SMTP (with STARTTLS, as EMAIL_URL's smtp:// asks) to take mail, answering
    the first `failures` MAIL commands with 451 (try again later)."""

    daemon_threads = allow_reuse_address = True

    def __init__(self, cert, key, failures):
        super().__init__(("127.0.0.1", 0), SMTPHandler)
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(cert, key)
        self.failures, self.refused, self.received, self.connections = failures, 0, [], 0


class SMTPHandler(socketserver.StreamRequestHandler):
    def reply(self, line):
        self.wfile.write(f"{line}\r\n".encode())

    def handle(self):
        self.server.connections += 1
        self.reply("220 test ESMTP")
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.reply("250-test\r\n250 STARTTLS")
            elif line.upper().startswith(b"STARTTLS"):
                self.reply("220 go ahead")
                self.request = self.server.tls.wrap_socket(self.request, server_side=True)
                self.rfile, self.wfile = self.request.makefile("rb"), self.request.makefile(
                    "wb", buffering=0)
            elif verb == b"MAIL" and self.server.refused < self.server.failures:
                self.server.refused += 1
                self.reply("451 4.3.0 try again later")
            elif verb == b"DATA":
                self.reply("354 go on")
                data = b"".join(iter(self.rfile.readline, b".\r\n"))
                self.server.received.append(data)
                self.reply("250 taken")
            elif verb == b"QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


@pytest.fixture
def smtp_server(tmp_path):
    cert, key = make_certificate(tmp_path)
    server = SMTPServer(cert, key, failures=1)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.cert = cert
    yield server
    server.shutdown()
    server.server_close()


def test_the_password_reset_page_returns_before_smtp_and_its_mail_is_retried(
        workers, smtp_server, client, django_user_model, settings):
    django_user_model.objects.create_user("member", "member@example.com", "a-passphrase")
    settings.MAILERS = {"default": {"BACKEND": f"{QueuedMailBackend.__module__}.QueuedMailBackend",
                                    "OPTIONS": {"mailer": "direct"}}}
    response = client.post(reverse("password_reset"), {"email": "member@example.com"})
    assert response.status_code == 302
    assert smtp_server.connections == 0  # the page only enqueued the mail
    [queued] = DBTaskResult.objects.filter(task_path=send_mail.module_path)
    assert queued.status == TaskResultStatus.READY
    port = smtp_server.server_address[1]
    workers.start(env={"EMAIL_URL": f"smtp://127.0.0.1:{port}",
                       "SSL_CERT_FILE": str(smtp_server.cert)})
    wait_for(lambda: status(queued) == TaskResultStatus.SUCCESSFUL, what="the mail to be sent")
    assert (smtp_server.refused, len(smtp_server.received)) == (1, 1)
    assert len(DBTaskResult.objects.get(id=queued.id).worker_ids) == 2
    mail = smtp_server.received[0].decode()
    assert "To: member@example.com" in mail
    assert "/accounts/reset/" in mail


def test_queued_mail_keeps_bcc_recipients_in_the_envelope(transactional_db, settings):
    from django.core.mail import EmailMessage

    settings.MAILERS = {"default": {"BACKEND": f"{QueuedMailBackend.__module__}.QueuedMailBackend",
                                    "OPTIONS": {"mailer": "direct"}},
                        "direct": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    EmailMessage("Hello", "Body", "from@example.com", ["to@example.com"],
                 bcc=["hidden@example.com"]).send()
    [queued] = DBTaskResult.objects.filter(task_path=send_mail.module_path)
    assert send_mail.call(**queued.args_kwargs["kwargs"]) == 1
    from django.core import mail

    [sent] = mail.outbox
    assert sent.recipients() == ["to@example.com", "hidden@example.com"]
    assert "hidden@example.com" not in sent.message().as_string()
    assert sent.subject == "Hello"


def health_of(path):
    return subprocess.run([sys.executable, "-m", health.__name__, str(path)], text=True,
                          capture_output=True, check=False, cwd=django_settings.BASE_DIR)


def test_health_tells_idle_from_stuck_from_dead(workers, tmp_path):
    assert "no heartbeat yet" in health_of(tmp_path / "none.json").stderr
    idle = workers.start()
    result = health_of(idle.heartbeat_file)
    assert (result.returncode, result.stderr) == (0, "")
    stale = json.loads(idle.heartbeat_file.read_text())["at"] + health.STALE_MARGIN + 5
    assert "heartbeat older than" in health.problem(idle.heartbeat_file, now=stale)
    idle.kill()

    busy = workers.start(env={"TASKS_MAX_RUNTIME": "2"})
    sleeps.enqueue(30)
    wait_for(lambda: json.loads(busy.heartbeat_file.read_text())["task"], what="the task")
    assert health_of(busy.heartbeat_file).returncode == 0  # busy, within TASKS_MAX_RUNTIME
    result = wait_for(lambda: (found := health_of(busy.heartbeat_file)).returncode and found,
                      what="the worker to be stuck")
    assert "longer than TASKS_MAX_RUNTIME (2 s)" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_health_imports_no_django():
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", health.__name__,
                             "/nonexistent"], text=True, capture_output=True, check=False,
                            cwd=django_settings.BASE_DIR)
    assert result.returncode == 1
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")]
    assert "json" in imported
    assert [name for name in imported if name.startswith("django")] == []


def test_the_admin_lists_task_results_with_their_traceback(admin_client, transactional_db):
    result = add.enqueue(1, 2)
    DBTaskResult.objects.filter(id=result.id).update(
        status=TaskResultStatus.FAILED, traceback="Traceback: something broke",
        exception_class_path="builtins.ValueError")
    listing = admin_client.get(reverse("admin:django_tasks_database_dbtaskresult_changelist"))
    assert listing.status_code == 200
    assert "add" in listing.content.decode()
    page = admin_client.get(reverse("admin:django_tasks_database_dbtaskresult_change",
                                    args=[result.id]))
    assert "something broke" in page.content.decode()
