"""One release only (delete this file and apps.py's ready() in the next): notes and uploads
moved out of this app into their own (CHANGELOG.md, the update that made them apps). A database
migrated before still has their rows in this app's old tables; `migrate` would create new, empty
tables beside them, and the data would look lost. This check stops `migrate` (which runs the
database checks) until the CHANGELOG's SQL step has renamed the tables."""

from django.core import checks
from django.db import connections

MOVED = [("note", "notes"), ("upload", "uploads")]  # model: the app it lives in now


@checks.register(checks.Tags.database)
def tables_of_the_moved_models(app_configs, databases=None, **kwargs):
    errors = []
    for alias in databases or []:
        tables = set(connections[alias].introspection.table_names())
        for model, label in MOVED:
            old = f"{{ cookiecutter.project_slug }}_{model}"
            if old in tables:
                errors.append(checks.Error(
                    f"The table {old} exists: its rows belong to the {label} app now, whose "
                    f"migrations would create an empty {label}_{model} beside it.",
                    hint="Run the SQL step of CHANGELOG.md (notes and uploads as apps) once on "
                         f"database {alias!r}, then migrate again.",
                    id="{{ cookiecutter.project_slug }}.E001"))
    return errors
