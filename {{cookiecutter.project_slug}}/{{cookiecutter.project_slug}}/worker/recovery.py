"""Tasks whose worker died (SIGKILL, a container gone, a stop past its grace period) while they
ran: every worker beats every few seconds in the database (models.Heartbeat); a task RUNNING
on a worker whose last beat is older than `lost_after` is recovered by the first worker that
sees it: re-queued if its retry policy has attempts left, else FAILED with WorkerLost.
Never left RUNNING. The same for a task whose own worker could not record its outcome (the
database was down when it finished): it runs again, or fails, the same way."""

from django.db import transaction
from django.tasks.base import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from {{ cookiecutter.project_slug }}.worker import WorkerLost, retries
from {{ cookiecutter.project_slug }}.worker.models import Heartbeat


def recover_lost_tasks(worker, lost_after):
    """Recover what `worker` (the one looking) finds lost; return the IDs recovered."""
    now = timezone.now()
    beats = dict(Heartbeat.objects.values_list("worker_id", "beat_at"))
    recovered = []
    with transaction.atomic():
        # Locked, skipping rows another worker is recovering; a task that has just started
        # is never looked at: its worker has beaten at least once since.
        running = DBTaskResult.objects.running().filter(
            started_at__lt=now - lost_after).select_for_update(skip_locked=True)
        current = (worker.current or {}).get("id")
        for result in running:
            owner = result.worker_ids[-1] if result.worker_ids else "?"
            beat = beats.get(owner)
            if owner == worker.worker_id:
                if str(result.id) == current:
                    continue
                why = (f"its worker {owner} could not record how it ended (database "
                       f"unavailable)")
            elif beat is not None and beat >= now - lost_after:
                continue
            else:
                why = (f"its worker {owner} stopped: last heartbeat "
                       f"{beat.isoformat() if beat else 'never'}, task started "
                       f"{result.started_at.isoformat()}; recovered at {now.isoformat()} by "
                       f"{worker.worker_id}")
            recover(result, why, now)
            recovered.append(str(result.id))
    return recovered


def recover(result, why, now):
    result.exception_class_path = f"{WorkerLost.__module__}.{WorkerLost.__qualname__}"
    result.traceback = f"{result.exception_class_path}: {why}\n"
    result.save(update_fields=["exception_class_path", "traceback"])
    if not retries.requeue_if_attempts_left(result, now):
        result.status = TaskResultStatus.FAILED
        result.finished_at = now
        result.return_value = None
        result.save(update_fields=["status", "finished_at", "return_value"])
