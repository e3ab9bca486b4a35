from django.apps import AppConfig


class NotesConfig(AppConfig):
    """The example app. To remove it: delete this folder, its line in INSTALLED_APPS and its
    include in config/urls.py."""

    name = "{{ cookiecutter.project_slug }}.notes"
    label = "notes"
