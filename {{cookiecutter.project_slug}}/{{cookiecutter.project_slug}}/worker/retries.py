"""Retrying a task that raised, with backoff, up to a limit (Django's tasks framework has none):

    from django.tasks import task
    from {{ cookiecutter.project_slug }}.worker.retries import retry

    @retry(attempts=5, backoff=2.0)
    @task
    def send_invoice(invoice_id): ...

Each failed attempt is recorded (its traceback, in the admin) and the task is re-queued on the
same row, to run after `backoff ** attempt` seconds (attempt 1, 2, ...), jittered and capped at
`max_delay`, until `attempts` attempts have failed: then it stays FAILED. A task without @retry
has one attempt. The policy applies to the worker (`manage.py worker`), not to the immediate
backend, which runs the task in the caller.
"""

import random
from dataclasses import dataclass
from datetime import timedelta

from django.tasks import Task
from django.tasks.base import TaskResultStatus
from django.utils import timezone
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class Policy:
    attempts: int = 1
    backoff: float = 2.0
    max_delay: float = 3600

    def delay(self, attempt):
        """Seconds to wait after failed attempt number `attempt` (1 for the first): from 3/4
        to 5/4 of backoff ** attempt, so that tasks that failed together do not retry together."""
        return min(self.max_delay, self.backoff ** attempt) * random.uniform(0.75, 1.25)  # noqa: S311


ONE_ATTEMPT = Policy()
# Each task's policy, by the task's import path (what the database row names).
POLICIES = {}


def retry(*, attempts=5, backoff=2.0, max_delay=3600):
    """Decorate a task (above @task) with its retry policy."""
    if not (isinstance(attempts, int) and attempts >= 1):
        raise ValueError(f"retry: attempts must be a whole number ≥ 1, not {attempts!r}")
    if not backoff >= 1 or not max_delay >= 0:
        raise ValueError("retry: backoff must be ≥ 1 and max_delay ≥ 0")

    def decorate(task):
        if not isinstance(task, Task):
            raise TypeError(f"@retry goes above @task: {task!r} is not a task")
        POLICIES[task.module_path] = Policy(attempts, backoff, max_delay)
        return task

    return decorate


def policy(task_path):
    """The policy of the task at `task_path`: importing it registers its @retry."""
    try:
        import_string(task_path)
    except ImportError:
        return ONE_ATTEMPT
    return POLICIES.get(task_path, ONE_ATTEMPT)


def requeue_if_attempts_left(db_task_result, now=None):
    """Put a FAILED (or lost) task back in the queue if its policy has attempts left; return
    whether it did. Its attempts so far are the workers that claimed it."""
    chosen = policy(db_task_result.task_path)
    attempt = len(db_task_result.worker_ids)
    if attempt >= chosen.attempts:
        return False
    db_task_result.status = TaskResultStatus.READY
    db_task_result.run_after = (now or timezone.now()) + timedelta(seconds=chosen.delay(attempt))
    db_task_result.finished_at = None
    db_task_result.save(update_fields=["status", "run_after", "finished_at"])
    return True


def after_attempt(db_task_result):
    """What the worker does once a task has run: a failure is retried per its policy."""
    if db_task_result.status == TaskResultStatus.FAILED:
        requeue_if_attempts_left(db_task_result)
