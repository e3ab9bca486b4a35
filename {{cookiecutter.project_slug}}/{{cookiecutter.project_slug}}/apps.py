from django.apps import AppConfig


class {{ cookiecutter.project_slug.title().replace('_', '') }}Config(AppConfig):
    name = "{{ cookiecutter.project_slug }}"
    verbose_name = {{ cookiecutter.project_name | tojson }}

    def ready(self):
        from {{ cookiecutter.project_slug }} import checks  # noqa: F401 - registers them
