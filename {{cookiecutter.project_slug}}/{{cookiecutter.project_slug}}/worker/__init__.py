"""Background tasks (docs/tasks.md): the worker (`python manage.py worker`), its health check
(`python -m {{ cookiecutter.project_slug }}.worker.health`), retries, the schedule and mail.
Nothing here imports Django: the health check imports this package every few seconds."""


class WorkerLost(Exception):
    """Recorded as the error of a task whose worker died (SIGKILL, container gone) while it
    ran, when its retry policy has no attempt left: it is never left RUNNING."""
