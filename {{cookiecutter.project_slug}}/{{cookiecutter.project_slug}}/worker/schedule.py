"""The schedule: which task the worker enqueues when (docs/tasks.md#the-schedule).

One (cron expression, task) pair per line. Five fields, minute hour day-of-month month
day-of-week, in TIME_ZONE (a sixth, first, field for seconds is allowed); the task takes no
arguments. Each tick is enqueued once, whatever the number of workers; a tick missed while no
worker ran is enqueued when one starts within an hour of it (scheduler.py).
"""

from {{ cookiecutter.project_slug }}.worker.tasks import prune_task_results

SCHEDULE = [
    ("30 3 * * *", prune_task_results),  # nightly, 03:30
]
