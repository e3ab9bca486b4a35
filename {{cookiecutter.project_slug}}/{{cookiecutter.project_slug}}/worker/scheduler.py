"""Enqueues the schedule's due ticks (schedule.py), exactly once each: a Tick row, unique per
(task, tick), is inserted in the transaction that enqueues the task, so of two workers that
see the same tick, the second's insert fails (after the first commits) and rolls its enqueue
back. The worker's heartbeat thread calls enqueue_due() every few seconds."""

from datetime import timedelta

from cronsim import CronSim, CronSimError
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.tasks import Task
from django.utils import timezone
from django.utils.module_loading import import_string

from {{ cookiecutter.project_slug }}.worker.models import Tick

# A tick missed while no worker ran (a deploy, an outage) still runs if a worker starts within
# this long after it; only the latest tick of each entry, never a backlog.
CATCH_UP = timedelta(hours=1)


def load(path):
    """The schedule at `path`, checked: a list of (cron expression, task without arguments)."""
    entries = import_string(path)
    for entry in entries:
        if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], Task)):
            raise ImproperlyConfigured(f"{path}: {entry!r} is not a (cron expression, task) pair")
        try:
            CronSim(entry[0], timezone.now())
        except CronSimError as error:
            raise ImproperlyConfigured(f"{path}: {entry[0]!r} is not a cron expression: "
                                       f"{error}") from error
    return entries


def latest_tick(expression, now):
    """The last tick of `expression` at or before `now` (in TIME_ZONE)."""
    return next(CronSim(expression, timezone.localtime(now), reverse=True))


def enqueue_due(entries, now=None, *, taken):
    """Enqueue each entry's latest tick, if no worker has yet; return the results enqueued.
    `taken` is the calling worker's memory of the ticks it has seen taken: it spares a database
    round trip per entry and beat."""
    now = now or timezone.now()
    enqueued = []
    for expression, task in entries:
        tick = latest_tick(expression, now)
        if now - tick > CATCH_UP or taken.get((expression, task.module_path)) == tick:
            continue
        try:
            with transaction.atomic():
                row = Tick.objects.create(task_path=task.module_path, tick=tick)
                result = task.enqueue()
                row.task_result_id = result.id
                row.save(update_fields=["task_result_id"])
            enqueued.append(result)
        except IntegrityError:
            pass  # another worker took this tick
        taken[(expression, task.module_path)] = tick
    return enqueued
