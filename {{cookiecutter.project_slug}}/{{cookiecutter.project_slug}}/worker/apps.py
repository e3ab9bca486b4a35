from django.apps import AppConfig


class WorkerConfig(AppConfig):
    """Background tasks: the worker command, retries, the schedule, mail (docs/tasks.md)."""

    name = "{{ cookiecutter.project_slug }}.worker"
    label = "worker"
    verbose_name = "Background tasks"
