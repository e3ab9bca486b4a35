"""A project from before notes and uploads became apps keeps its data through the update: a
user, a note and an upload row made by the old code; `cruft update` to this checkout; `migrate`
refused by the one-release check (<slug>.E001) while the old tables sit there; CHANGELOG's SQL
step, as written; then nothing of theirs left to migrate, and the rows and the user's permission read back
through the new apps. Needs Docker (PostgreSQL) and PyPI (`uv lock` after the update)."""

import re
import secrets
import subprocess

import pytest

from conftest import TEMPLATE, run, tool_environment
from test_cruft import BEFORE_THE_MOVES, Template, create, cruft, output

pytestmark = pytest.mark.xdist_group("cruft")
CID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"


def changelog_sql(slug):
    """The Unreleased section's SQL step, for this project's package name."""
    unreleased = re.split(r"^## ", (TEMPLATE / "CHANGELOG.md").read_text(), flags=re.M)[1]
    (sql,) = re.findall(r"```sql\n(.*?)```", unreleased, re.S)
    return re.sub(r"^  ", "", sql, flags=re.M).replace("<slug>", slug)


def manage(project, environ, *arguments, check=True):
    command = ["uv", "run", "--locked", "python", "manage.py", *arguments]
    if check:
        return run(command, cwd=project, env=environ)
    return subprocess.run(command, cwd=project, env=environ, text=True, capture_output=True,
                          timeout=600, check=False)


def shell(project, environ, code):
    return manage(project, environ, "shell", "-v", "0", "-c", code).stdout


@pytest.fixture
def environ(tmp_path, postgres):
    """test_cruft's isolated git and cookiecutter, and a database of its own for the project
    (created by the test, with the project's psycopg)."""
    config = tmp_path / "cookiecutter.yaml"
    config.write_text(f"cookiecutters_dir: {tmp_path / 'cookiecutters'}\n"
                      f"replay_dir: {tmp_path / 'replay'}\n")
    database = f"upgrade_{secrets.token_hex(4)}"
    return tool_environment() | {
        "COOKIECUTTER_CONFIG": str(config),
        "GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig"), "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Shipshape tests", "GIT_AUTHOR_EMAIL": "tests@example.com",
        "GIT_COMMITTER_NAME": "Shipshape tests", "GIT_COMMITTER_EMAIL": "tests@example.com",
        "DEBUG": "true", "DATABASE_URL": f"{postgres}/{database}",
    }


def test_notes_and_uploads_keep_their_rows_through_the_move_into_apps(tmp_path, environ):
    template = Template(tmp_path, environ, commit=BEFORE_THE_MOVES)
    project, _ = create(template, tmp_path / "out")
    slug = project.name
    run(["uv", "sync", "--locked", "--quiet"], cwd=project, env=environ)
    server, database = environ["DATABASE_URL"].rsplit("/", 1)
    run(["uv", "run", "--locked", "python", "-c", "import psycopg; psycopg.connect("
         f"{server + '/postgres'!r}, autocommit=True).execute('CREATE DATABASE {database}')"],
        cwd=project, env=environ)
    manage(project, environ, "migrate", "--noinput")
    shell(project, environ, (
        "from django.contrib.auth.models import Permission\n"
        f"from {slug}.models import Note, Upload, User\n"
        "ada = User.objects.create_user('ada')\n"
        "ada.user_permissions.add(Permission.objects.get(codename='change_note'))\n"
        "Note.objects.create(title='kept', body='through the move', author=ada)\n"
        # A stored file's row, as the old storage named it (no node needed to write the row).
        f"Upload.objects.create(file='{CID}/report.pdf', cid='{CID}', size=5,\n"
        "                      content_type='application/pdf', uploaded_by=ada)\n"))

    template.commit_checkout()
    result = cruft("update", "--skip-apply-ask", cwd=project, environ=environ)
    assert result.returncode == 0 and "has been updated" in result.stdout, output(result)
    assert not (project / slug / "migrations/0002_note_author.py").exists()
    assert (project / slug / "notes/migrations/0001_initial.py").exists()
    run(["uv", "lock", "--quiet"], cwd=project, env=environ)  # cruft skips uv.lock: re-lock
    run(["uv", "sync", "--locked", "--quiet"], cwd=project, env=environ)

    refused = manage(project, environ, "migrate", "--noinput", check=False)
    assert refused.returncode != 0, refused.stdout
    for table, app in ((f"{slug}_note", "notes"), (f"{slug}_upload", "uploads")):
        assert f"({slug}.E001) The table {table} exists: its rows belong to the {app} app" \
            in refused.stderr, refused.stderr
    # Refused before anything changed: no new, empty table beside the old one.
    tables = shell(project, environ, "from django.db import connection\n"
                                     "print(sorted(connection.introspection.table_names()))")
    assert "'notes_note'" not in tables and f"'{slug}_note'" in tables

    shell(project, environ, "from django.db import connection\n"
                            f"connection.cursor().execute({changelog_sql(slug)!r})")

    # Nothing of notes or uploads left to apply: only the core app's migrations that came
    # after the reshaping.
    plan = manage(project, environ, "migrate", "--plan").stdout
    assert re.findall(r"^(\w+)\.\d{4}_\w+$", plan, re.MULTILINE) == [slug], plan
    manage(project, environ, "migrate", "--noinput")  # and the check passes
    manage(project, environ, "migrate", "--check")
    manage(project, environ, "makemigrations", "--check", "--dry-run")
    read = shell(project, environ, (
        f"from {slug}.models import User\n"
        f"from {slug}.notes.models import Note\n"
        f"from {slug}.uploads.models import Upload\n"
        "note, upload = Note.objects.get(), Upload.objects.get()\n"
        "ada = User.objects.get(username='ada')\n"
        "print(note.title, note.body, note.author.username, note.get_absolute_url())\n"
        "print(upload.cid, upload.uploaded_by.username, upload, upload.size)\n"
        "print(ada.has_perm('notes.change_note'), ada.has_perm('notes.delete_note'))\n"))
    lines = read.splitlines()
    assert lines[0].startswith("kept through the move ada /notes/")
    assert lines[1] == f"{CID} ada report.pdf 5"
    assert lines[2] == "True False"
