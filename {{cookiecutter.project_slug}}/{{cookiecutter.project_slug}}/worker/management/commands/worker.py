"""`python manage.py worker`: django-tasks-db's worker (its loop, claiming, signals and
`--reload`) for every queue, plus what this project adds (docs/tasks.md):

- a heartbeat file (HEARTBEAT_FILE), written at each turn of the loop and at each task's start and
  end, which `python -m {{ cookiecutter.project_slug }}.worker.health` reads;
- a heartbeat thread: every --heartbeat seconds it writes this worker's row in the database,
  recovers tasks whose worker stopped beating (recovery.py) and enqueues the schedule's due
  ticks (schedule.py). It survives database errors, and so does the loop;
- retries: a task that raised is re-queued as its @retry policy says (retries.py).
"""

import json
import logging
import os
import socket
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError
from django.db import DatabaseError, close_old_connections, connection
from django.utils import autoreload
from django.utils.crypto import get_random_string
from django_tasks_db.management.commands import db_worker

from {{ cookiecutter.project_slug }}.worker import recovery, retries, scheduler
from {{ cookiecutter.project_slug }}.worker.health import HEARTBEAT_FILE
from {{ cookiecutter.project_slug }}.worker.models import Heartbeat

logger = logging.getLogger("{{ cookiecutter.project_slug }}.worker")


class Worker(db_worker.Worker):
    def __init__(self, *, heartbeat_file, heartbeat, lost_after, schedule, **options):
        self.heartbeat_file, self.heartbeat, self.lost_after = heartbeat_file, heartbeat, lost_after
        self.schedule = schedule
        self.ticks_taken = {}
        self.current = None  # the task this worker runs: {"id", "task", "started_at"}
        self._running = True
        super().__init__(**options)

    # db_worker's loop reads `self.running` at the top of each turn (and before it sleeps):
    # reading it is this worker's per-turn hook, so the loop itself stays the package's.
    @property
    def running(self):
        self.write_heartbeat_file()
        return self._running

    @running.setter
    def running(self, value):
        self._running = value

    def write_heartbeat_file(self):
        """Atomically (a health check never reads half a file); cheap: no database."""
        state = {"pid": os.getpid(), "worker_id": self.worker_id, "at": time.time(),
                 "interval": self.interval, "max_runtime": settings.TASKS_MAX_RUNTIME,
                 "task": self.current}
        try:
            descriptor, temporary = tempfile.mkstemp(dir=self.heartbeat_file.parent,
                                                     prefix=".worker-heartbeat-")
            with os.fdopen(descriptor, "w") as file:
                json.dump(state, file)
            os.replace(temporary, self.heartbeat_file)
        except OSError:
            logger.exception("Could not write the heartbeat file %s", self.heartbeat_file)

    def run(self):
        threading.Thread(target=self.beat_forever, name="heartbeat", daemon=True).start()
        while True:
            try:
                return super().run()
            except DatabaseError:
                # The database restarting: wait for it rather than exit. A task whose outcome
                # could not be recorded stays RUNNING under this worker's ID; the heartbeat
                # thread releases it (recovery.py) once the database is back.
                if not self._running:
                    return None
                pause = min(self.heartbeat, 5)
                logger.exception("Database error; trying again in %s s", pause)
                self.current = None
                self.write_heartbeat_file()  # healthy: restarting the worker would not help
                connection.close()
                time.sleep(pause)

    def run_task(self, db_task_result):
        self.current = {"id": str(db_task_result.id), "task": db_task_result.task_path,
                        "started_at": time.time()}
        self.write_heartbeat_file()
        try:
            super().run_task(db_task_result)
            retries.after_attempt(db_task_result)
        finally:
            self.current = None
            self.write_heartbeat_file()

    def beat_forever(self):
        while True:
            self.beat()
            time.sleep(self.heartbeat)

    def beat(self):
        """One heartbeat: this worker's row, then lost tasks, then the schedule. In its own
        thread, with its own database connection; no error stops it."""
        try:
            close_old_connections()
            Heartbeat.beat(self.worker_id)
            recovery.recover_lost_tasks(self, timedelta(seconds=self.lost_after))
            scheduler.enqueue_due(self.schedule, taken=self.ticks_taken)
        except Exception:  # noqa: BLE001 - logged; the next beat tries again
            logger.exception("Heartbeat failed; trying again in %s s", self.heartbeat)
            try:
                connection.close()
            except DatabaseError:
                pass


class Command(db_worker.Command):
    help = "Run the background worker: every queue, the schedule, heartbeats (docs/tasks.md)"

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.set_defaults(queue_name="*",
                            worker_id=f"{socket.gethostname()}-{os.getpid()}-"
                                      f"{get_random_string(8)}"[-64:])
        parser.add_argument(
            "--heartbeat", type=float, default=10,
            help="Seconds between this worker's heartbeats in the database (default: %(default)s)")
        parser.add_argument(
            "--lost-after", type=float, default=30,
            help="Seconds without a heartbeat after which a worker's running task is recovered "
                 "(default: %(default)s)")
        parser.add_argument(
            "--heartbeat-file", type=Path, default=Path(HEARTBEAT_FILE),
            help="The file the health check reads (default: %(default)s)")
        parser.add_argument(
            "--schedule", default="{{ cookiecutter.project_slug }}.worker.schedule.SCHEDULE",
            help="The schedule, as a dotted path (default: %(default)s)")

    def handle(self, *, verbosity, queue_name, interval, batch, backend_name, startup_delay,
               reload, max_tasks, worker_id, exclude_queues, heartbeat, lost_after,
               heartbeat_file, **options):
        self.configure_logging(verbosity)
        if heartbeat <= 0 or lost_after <= heartbeat:
            raise CommandError("--heartbeat must be positive and --lost-after longer than it")
        worker = Worker(
            queue_names=queue_name.split(","), interval=interval, batch=batch,
            backend_name=backend_name, startup_delay=startup_delay, max_tasks=max_tasks,
            worker_id=worker_id,
            excluded_queue_names=exclude_queues.split(",") if exclude_queues else [],
            heartbeat_file=heartbeat_file, heartbeat=heartbeat, lost_after=lost_after,
            schedule=scheduler.load(options["schedule"]),
        )
        # As db_worker does: under the reloader, only the child that runs tasks handles signals.
        if reload and not batch:
            if os.environ.get(autoreload.DJANGO_AUTORELOAD_ENV) == "true":
                worker.configure_signals()
            autoreload.run_with_reloader(worker.run)
        else:
            worker.configure_signals()
            worker.run()
