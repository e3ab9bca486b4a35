"""Print the background tasks' figures of a tasks=yes project's production image: tasks per second
through one worker and two (no-op tasks and 10 ms ones), enqueue-to-start latency (median, p99)
at rest and under web load, and an idle worker's memory and CPU, with what its polling costs the
database.

    uv run python bench/tasks.py [--tasks N] [--samples N] [--idle SECONDS]

Needs a Docker engine with BuildKit, and wrk (Debian: `apt-get install wrk`) for the web load. It
generates a project with tasks=yes (ipfs and notebooks no: neither takes part), adds a module of
two bench tasks (a no-op, a 10 ms sleep), builds the prod image, and runs it as deploy/compose.yaml
does (read-only root, a sized /tmp tmpfs, no capabilities, 768 MiB) beside a postgres:17 container
on a network of its own: `manage.py migrate`, then `manage.py worker` containers as the figure
needs, and gunicorn (the image's CMD) for the web load. Every time comes from the database rows
django-tasks-db keeps (enqueued_at, set by the enqueuing process; started_at and finished_at, by
the worker; one clock, the host's):

- tasks per second: N tasks enqueued in one transaction (all visible at once) to idle workers,
  divided by the span from the first start to the last finish;
- latency: started_at - enqueued_at of tasks enqueued one at a time, 50 to 250 ms apart (random),
  to idle workers, then again while wrk loads gunicorn (-t2 -c16, GET /admin/login/, no database
  query: CPU contention on this machine's cores, the load web puts on a small host);
- idle: a worker left alone for --idle seconds: its resident memory (VmRSS of the process, and the
  container's as the engine counts it), its CPU (its cgroup's), and the database's CPU and
  transactions over the same time, against the same time without a worker.

The worker polls for tasks every second when idle (django-tasks-db's --interval, default 1 s,
which `manage.py worker` keeps) and writes its heartbeat row every 10 s. Everything it creates is
removed at the end.
"""

import argparse
import http.client
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# bench/containers.py, beside this
from containers import run

TEMPLATE = Path(__file__).resolve().parent.parent
RUN = f"bench-{os.getpid()}-{secrets.token_hex(3)}"
SLUG = "my_project"
PASSWORD = secrets.token_urlsafe(24)
DATABASE_URL = f"postgres://{SLUG}:{PASSWORD}@{RUN}-db:5432/{SLUG}"
TABLE = "django_tasks_database_dbtaskresult"
BENCH_TASKS = '''"""Tasks of bench/tasks.py (Shipshape's)."""

import time

from django.tasks import task


@task
def noop():
    return None


@task
def ten_ms():
    time.sleep(0.01)
'''
# `manage.py shell -c`: N tasks enqueued in one transaction, so that the workers see them at once.
ENQUEUE_AT_ONCE = ("from django.db import transaction\nfrom {slug}.bench_tasks import {task}\n"
                   "with transaction.atomic():\n    for _ in range({count}): {task}.enqueue()")
# One at a time, a random 50-250 ms apart.
ENQUEUE_SPACED = ("import random, time\nfrom {slug}.bench_tasks import noop\n"
                  "for _ in range({count}):\n    noop.enqueue()\n"
                  "    time.sleep(random.uniform(0.05, 0.25))")


def docker(*arguments, check=True):
    if check:
        return run(["docker", *arguments], cwd=".")
    return subprocess.run(["docker", *arguments], text=True, capture_output=True, check=False)


def app(name, *command, detach=True, publish=None):
    """A container of the prod image, hardened as deploy/compose.yaml's app services."""
    options = ["--detach"] if detach else ["--rm"]
    if publish:
        options += ["--publish", publish]
    return docker("run", *options, "--name", name, "--network", RUN, "--read-only",
                  "--tmpfs", "/tmp:size=256m", "--cap-drop", "ALL",
                  "--security-opt", "no-new-privileges:true", "--memory", "768m",
                  "--env", "DEBUG=false", "--env", f"SECRET_KEY={secrets.token_urlsafe(64)}",
                  "--env", "ALLOWED_HOSTS=localhost", "--env", f"DATABASE_URL={DATABASE_URL}",
                  "--env", "EMAIL_URL=smtp://mail.invalid", f"{RUN}-image", *command)


def shell(code):
    app(f"{RUN}-shell", "python", "manage.py", "shell", "-v", "0", "-c", code, detach=False)


def sql(query):
    return docker("exec", f"{RUN}-db", "psql", "-U", SLUG, "-d", SLUG, "-At", "-c",
                  query).stdout.strip()


def cpu_seconds(container):
    """CPU time the container's processes have used, from its cgroup (v2, or v1's cpuacct)."""
    usage = docker("exec", container, "sh", "-c", "cat /sys/fs/cgroup/cpu.stat 2>/dev/null "
                   "|| cat /sys/fs/cgroup/cpuacct/cpuacct.usage").stdout
    if match := re.search(r"^usage_usec (\d+)$", usage, re.M):
        return int(match[1]) / 1e6
    return int(usage) / 1e9


class Workers:
    """`manage.py worker` containers, started idle (their first heartbeat written), stopped as
    the deployments stop them (SIGTERM, graceful)."""

    def __init__(self, count):
        self.names = [f"{RUN}-worker-{number}" for number in range(count)]

    def __enter__(self):
        for name in self.names:
            app(name, "python", "manage.py", "worker")
        for name in self.names:
            deadline = time.monotonic() + 60
            while docker("exec", name, "python", "-m", f"{SLUG}.worker.health",
                         check=False).returncode:
                if time.monotonic() > deadline:
                    sys.exit(f"{name} not healthy after 60 s:\n"
                             + docker("logs", name, check=False).stderr[-3000:])
                time.sleep(0.5)
        time.sleep(2)  # past db_worker's random start-up delay (up to 1 s)
        return self

    def __exit__(self, *exception):
        for name in self.names:
            docker("stop", "--time", "60", name, check=False)
            docker("rm", "--force", name, check=False)


def wait_for(count, timeout=600):
    """Until `count` tasks have finished (the table is emptied between figures)."""
    deadline = time.monotonic() + timeout
    while int(sql(f"SELECT count(*) FROM {TABLE} WHERE finished_at IS NOT NULL")) < count:
        if time.monotonic() > deadline:
            sys.exit(f"tasks still unfinished after {timeout} s: "
                     + sql(f"SELECT status, count(*) FROM {TABLE} GROUP BY status"))
        time.sleep(0.5)
    failed = sql(f"SELECT count(*) FROM {TABLE} WHERE status <> 'SUCCESSFUL'")
    if failed != "0":
        sys.exit(f"{failed} tasks did not succeed")


def throughput(task, count, workers):
    sql(f"DELETE FROM {TABLE}")
    with Workers(workers):
        shell(ENQUEUE_AT_ONCE.format(slug=SLUG, task=task, count=count))
        wait_for(count)
    span = float(sql("SELECT extract(epoch FROM max(finished_at) - min(started_at)) "
                     f"FROM {TABLE}"))
    return count / span


def latencies(count, workers, load_port=None):
    """Enqueue-to-start, in ms, of `count` no-op tasks enqueued one at a time; with wrk loading
    gunicorn meanwhile when a port is given."""
    sql(f"DELETE FROM {TABLE}")
    with Workers(workers):
        wrk = None
        if load_port:
            wrk = subprocess.Popen(["wrk", "-t2", "-c16", "-d600s", "-H", "Host: localhost",
                                    "-H", "X-Forwarded-Proto: https",
                                    f"http://127.0.0.1:{load_port}/admin/login/"],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            time.sleep(2)
        try:
            shell(ENQUEUE_SPACED.format(slug=SLUG, count=count))
            wait_for(count)
        finally:
            if wrk:
                wrk.terminate()
                wrk.communicate()
    values = sql("SELECT extract(epoch FROM started_at - enqueued_at) * 1000 "
                 f"FROM {TABLE}").split()
    return sorted(float(value) for value in values)


def healthz(port):
    try:
        connection = http.client.HTTPConnection("127.0.0.1", int(port), timeout=5)
        connection.request("GET", "/healthz", headers={"Host": "localhost",
                                                       "X-Forwarded-Proto": "https"})
        return connection.getresponse().status == 200
    except OSError:
        return False


def percentile(values, fraction):
    return values[min(len(values) - 1, round(fraction * (len(values) - 1)))]


def idle(seconds):
    """(worker VmRSS MiB, container MiB, worker CPU %, db CPU % and transactions/s with the
    worker idle, the same without it)."""
    database = f"{RUN}-db"

    def database_figures():
        before = (cpu_seconds(database), int(sql(
            f"SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{SLUG}'")))
        time.sleep(seconds)
        after = (cpu_seconds(database), int(sql(
            f"SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{SLUG}'")))
        # The query that reads pg_stat_database is one transaction of its own; not the worker's.
        return (100 * (after[0] - before[0]) / seconds, (after[1] - before[1] - 1) / seconds)

    sql(f"DELETE FROM {TABLE}")
    without = database_figures()
    with Workers(1) as workers:
        name = workers.names[0]
        time.sleep(5)
        cpu_before = cpu_seconds(name)
        with_worker = database_figures()
        cpu = 100 * (cpu_seconds(name) - cpu_before) / seconds
        status = docker("exec", name, "cat", "/proc/1/status").stdout
        rss = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)[1]) / 1024
        usage = docker("stats", "--no-stream", "--format", "{{.MemUsage}}",
                       name).stdout.split("/")[0].strip()
        number, unit = re.fullmatch(r"([\d.]+)\s*([KMG]i?B)", usage).groups()
        container = float(number) * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[unit]
    return rss, container, cpu, with_worker, without


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000,
                        help="tasks per throughput figure (default 2000)")
    parser.add_argument("--samples", type=int, default=100,
                        help="tasks per latency figure (default 100)")
    parser.add_argument("--idle", type=int, default=60,
                        help="seconds of each idle measurement (default 60)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        run([sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), "-o", scratch,
             "tasks=yes", "ipfs=no", "notebooks=no"], cwd=scratch)
        project = Path(scratch) / SLUG
        (project / SLUG / "bench_tasks.py").write_text(BENCH_TASKS)
        try:
            started = time.perf_counter()
            run(["docker", "build", "--quiet", "--target", "prod", "--tag", f"{RUN}-image", "."],
                project)
            print(f"prod image built in {time.perf_counter() - started:.0f} s")
            docker("network", "create", RUN)
            docker("run", "--detach", "--name", f"{RUN}-db", "--network", RUN,
                   "--env", f"POSTGRES_USER={SLUG}", "--env", f"POSTGRES_PASSWORD={PASSWORD}",
                   "postgres:17")
            deadline = time.monotonic() + 60
            while docker("exec", f"{RUN}-db", "pg_isready", "--host=127.0.0.1", "-U", SLUG,
                         check=False).returncode:
                if time.monotonic() > deadline:
                    sys.exit("postgres not ready after 60 s")
                time.sleep(0.5)
            app(f"{RUN}-migrate", "python", "manage.py", "migrate", "--noinput", detach=False)

            print(f"\nTasks per second ({options.tasks} tasks enqueued at once, first start to "
                  "last finish):")
            print(f"  {'task':<10} {'1 worker':>10} {'2 workers':>10}")
            for task, label in (("noop", "no-op"), ("ten_ms", "10 ms")):
                rates = [throughput(task, options.tasks, workers) for workers in (1, 2)]
                print(f"  {label:<10} {rates[0]:>10.0f} {rates[1]:>10.0f}")

            app(f"{RUN}-web", publish="127.0.0.1::8000")
            port = docker("port", f"{RUN}-web", "8000").stdout.splitlines()[0].rsplit(":", 1)[1]
            deadline = time.monotonic() + 60
            while not healthz(port):
                if time.monotonic() > deadline:
                    sys.exit("gunicorn not serving /healthz after 60 s")
                time.sleep(0.5)
            print(f"\nEnqueue to start, ms ({options.samples} no-op tasks, 50-250 ms apart; "
                  "the idle poll: 1 s):")
            print(f"  {'':<28} {'median':>8} {'p99':>8} {'max':>8}")
            for label, workers, load in (("1 worker, at rest", 1, None),
                                         ("2 workers, at rest", 2, None),
                                         ("2 workers, under web load", 2, port)):
                values = latencies(options.samples, workers, load)
                print(f"  {label:<28} {statistics.median(values):>8.0f} "
                      f"{percentile(values, 0.99):>8.0f} {values[-1]:>8.0f}")

            docker("stop", f"{RUN}-web")
            rss, container, cpu, (db_cpu, db_tps), (base_cpu, base_tps) = idle(options.idle)
            print(f"\nAn idle worker, over {options.idle} s (poll every 1 s, heartbeat every "
                  "10 s):")
            print(f"  worker: {rss:.0f} MiB resident (VmRSS; the container: {container:.0f} MiB), "
                  f"{cpu:.2f} % of a CPU")
            print(f"  database: {db_cpu:.2f} % of a CPU and {db_tps:.2f} transactions/s with it, "
                  f"{base_cpu:.2f} % and {base_tps:.2f}/s without")
        finally:
            names = docker("ps", "--all", "--quiet", "--filter", f"name={RUN}-",
                           check=False).stdout.split()
            if names:
                docker("rm", "--force", "--volumes", *names, check=False)
            docker("network", "rm", RUN, check=False)
            docker("rmi", "--force", f"{RUN}-image", check=False)


if __name__ == "__main__":
    main()
