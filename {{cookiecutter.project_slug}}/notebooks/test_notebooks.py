"""The notebooks run top to bottom in a real kernel, set up by notebooks/startup.py as in
JupyterLab, against the test database: a cell that raises fails the test."""

import datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection
from django.utils import timezone

from {{ cookiecutter.project_slug }}.models import User
from {{ cookiecutter.project_slug }}.notes.models import Note

# Jupyter is in the notebook group, which the dev image (compose's `web`) leaves out: there these
# tests are skipped, with the command that runs them, instead of failing the run's collection.
IN_THE_NOTEBOOK_IMAGE = ("no Jupyter here (the web image has none): "
                         "docker compose run --rm notebook pytest notebooks/test_notebooks.py")
nbformat = pytest.importorskip("nbformat", reason=IN_THE_NOTEBOOK_IMAGE)
NotebookClient = pytest.importorskip("nbclient", reason=IN_THE_NOTEBOOK_IMAGE).NotebookClient
CellExecutionError = pytest.importorskip("nbclient.exceptions").CellExecutionError

NOTEBOOKS = Path(__file__).resolve().parent


def execute(notebook, monkeypatch):
    """Run every cell of `notebook` in a fresh kernel that uses the test database."""
    # The test database pytest-django created (DATABASE_URL may be unset: its default then).
    database = connection.settings_dict
    host = f"[{database['HOST']}]" if ":" in database["HOST"] else database["HOST"]
    port = f":{database['PORT']}" if database["PORT"] else ""
    monkeypatch.setenv("DATABASE_URL", f"postgres://{quote(database['USER'], safe='')}:"
                       f"{quote(database['PASSWORD'], safe='')}@{host}{port}/{database['NAME']}")
    monkeypatch.setenv("PYTHONSTARTUP", str(NOTEBOOKS / "startup.py"))
    client = NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    return client.execute()


def printed(notebook):
    return "".join(output.get("text", "") for cell in notebook.cells
                   for output in cell.get("outputs", []))


# Transactional: the kernel is another process, so it sees committed rows only.
@pytest.mark.django_db(transaction=True)
def test_the_example_notebook_runs_on_seeded_rows(monkeypatch):
    User.objects.create(username="ada", is_staff=True)
    User.objects.create(username="grace")
    today = timezone.now()
    for days_ago, words in [(0, 5), (0, 250), (2, 40)]:
        note = Note.objects.create(title=f"{words} words", body="word " * words)
        Note.objects.filter(pk=note.pk).update(created=today - datetime.timedelta(days=days_ago))
    notebook = execute(nbformat.read(NOTEBOOKS / "explore_notes.ipynb", as_version=4),
                       monkeypatch)
    assert "3 notes, 2 users, 1 of them staff" in printed(notebook)
    charts = [output for cell in notebook.cells for output in cell.get("outputs", [])
              if "image/png" in output.get("data", {})]
    assert len(charts) == 1


@pytest.mark.django_db(transaction=True)
def test_a_cell_that_raises_fails_the_run(monkeypatch):
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(
            "from {{ cookiecutter.project_slug }}.notes.models import Note\n"
            "print('notes:', Note.objects.count())"),
        nbformat.v4.new_code_cell("raise ValueError('this cell fails')"),
    ])
    with pytest.raises(CellExecutionError, match="this cell fails"):
        execute(notebook, monkeypatch)
    assert "notes: 0" in printed(notebook)
