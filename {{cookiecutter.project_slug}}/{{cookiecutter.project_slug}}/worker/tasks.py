"""The worker's own tasks. Your tasks go in your apps' tasks.py (docs/tasks.md)."""

from datetime import timedelta

from django.conf import settings
from django.tasks import task
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from {{ cookiecutter.project_slug }}.worker.models import Heartbeat, Tick
from {{ cookiecutter.project_slug }}.worker.retries import retry


@retry(attempts=3, backoff=60)
@task
def prune_task_results():
    """Delete finished task results (and the schedule's ticks, and the heartbeats of workers
    long gone) older than TASKS_KEEP_DAYS; return how many results."""
    before = timezone.now() - timedelta(days=settings.TASKS_KEEP_DAYS)
    deleted, _ = DBTaskResult.objects.finished().filter(finished_at__lt=before).delete()
    Tick.objects.filter(tick__lt=before).delete()
    Heartbeat.objects.filter(beat_at__lt=before).delete()
    return deleted
