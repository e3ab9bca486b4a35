"""Options answered `no` leave no trace, down to uv.lock, which the post-generation hook prunes
offline; and what the `notebooks` option documents (a read-only role) works as written."""

import re
import secrets
import subprocess
import tomllib

import pytest
import yaml
from cookiecutter.environment import StrictEnvironment

from conftest import QUESTIONS, TEMPLATE, generate, run, tool_environment

# What only the notebooks option brings: words in files, and the group's own packages.
NOTEBOOK_WORDS = re.compile(r"notebook|jupyter|ipynb|ipykernel|nbqa|nbstripout|nbclient|pandas|"
                            r"matplotlib", re.IGNORECASE)


def lock_packages(project):
    return {package["name"] for package in
            tomllib.loads((project / "uv.lock").read_text())["package"]}


def project_files(project):
    return sorted(path for path in project.rglob("*") if path.is_file()
                  and ".venv" not in path.parts and path.name != ".env")


def post_gen_hook():
    """The post-generation hook's functions, rendered as cookiecutter renders it."""
    answers = {name: value[0] if isinstance(value, list) else value
               for name, value in QUESTIONS.items()} | {"project_slug": "my_project"}
    source = (TEMPLATE / "hooks" / "post_gen_project.py").read_text()
    namespace = {"__name__": "post_gen_project"}
    exec(StrictEnvironment().from_string(source).render(cookiecutter=answers), namespace)
    return namespace


@pytest.fixture(scope="module")
def with_notebooks(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("with"), notebooks="yes")


@pytest.fixture(scope="module")
def without_notebooks(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("without"), notebooks="no")


def test_notebooks_no_leaves_no_trace(without_notebooks, with_notebooks):
    traces = [f"{path.relative_to(without_notebooks)}: {match}"
              for path in project_files(without_notebooks)
              for match in set(NOTEBOOK_WORDS.findall(path.read_text()))]
    assert traces == []
    assert "JUPYTER_TOKEN" not in (without_notebooks / ".env").read_text()
    # With them, .env holds a token of its own, and no other file does.
    token = re.search(r"^JUPYTER_TOKEN=(.+)$", (with_notebooks / ".env").read_text(), re.M)[1]
    assert len(token) >= 32
    assert [path for path in project_files(with_notebooks) if token in path.read_text()] == []
    # The words do mark the option: the project that has it has them.
    assert NOTEBOOK_WORDS.search((with_notebooks / "Dockerfile").read_text())


def assert_group_pruned(without, with_it, name):
    """`without`'s lock has none of dependency group `name`'s packages, `with_it`'s has them,
    and both locks are current."""
    group = tomllib.loads((with_it / "pyproject.toml").read_text())["dependency-groups"][name]
    direct = {re.match(r"[A-Za-z0-9_.-]+", requirement)[0] for requirement in group}
    kept, full = lock_packages(without), lock_packages(with_it)
    assert direct <= full and not direct & kept
    assert kept < full
    # Offline and --locked: the lock is exactly what uv would write for this pyproject.toml.
    run(["uv", "lock", "--locked", "--offline"], cwd=without)
    run(["uv", "lock", "--locked", "--offline"], cwd=with_it)


def test_the_pruned_lock_is_current_and_has_none_of_the_groups_packages(
        without_notebooks, with_notebooks):
    assert_group_pruned(without_notebooks, with_notebooks, "notebook")


def test_pruning_works_for_any_group(tmp_path):
    """The same pruning, applied to the `template` group (cruft): what a later option reuses."""
    project = generate(tmp_path, notebooks="no")
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(re.sub(r'^template = \[.*\]\n', "", text, flags=re.MULTILINE))
    assert pyproject.read_text() != text
    before = lock_packages(project)
    post_gen_hook()["prune_lock"](project / "uv.lock", "template")
    after = lock_packages(project)
    assert {"cruft", "cookiecutter"} <= before - after
    assert "django" in after and "pytest" in after  # what other groups still need stays
    run(["uv", "lock", "--locked", "--offline"], cwd=project)


def test_the_notebooks_own_names_are_free_slugs_without_them(tmp_path):
    project = generate(tmp_path, project_slug="pandas", notebooks="no")
    assert (project / "pandas" / "models.py").exists()


def shell(project, url, code, check=True):
    """Run Python in the project's Django shell, against the database at `url`."""
    command = ["uv", "run", "--locked", "python", "manage.py", "shell", "-v", "0", "-c", code]
    env = tool_environment() | {"DEBUG": "true", "DATABASE_URL": url}
    if check:
        return run(command, cwd=project, env=env).stdout
    return subprocess.run(command, cwd=project, env=env, text=True, capture_output=True,
                          check=False)


def test_the_docs_read_only_role_reads_every_table_and_writes_none(with_notebooks, postgres):
    """The SQL docs/notebooks.md gives for exploring production data, run as written."""
    sql = re.search(r"```sql\n(.*?)```", (with_notebooks / "docs" / "notebooks.md").read_text(),
                    re.S)[1]
    password = secrets.token_hex(16)
    sql = sql.replace("'a long random password'", f"'{password}'")
    database = f"read_only_{secrets.token_hex(4)}"
    admin_url, owner_url = f"{postgres}/postgres", f"{postgres}/{database}"
    analyst_url = re.sub(r"//[^@]+@", f"//analyst:{password}@", owner_url)
    administer = f"import psycopg; admin = psycopg.connect({admin_url!r}, autocommit=True); "
    shell(with_notebooks, admin_url, administer + f"admin.execute('CREATE DATABASE {database}')")
    try:
        run(["uv", "run", "--locked", "python", "manage.py", "migrate", "--noinput"],
            cwd=with_notebooks, env=tool_environment() | {"DEBUG": "true",
                                                          "DATABASE_URL": owner_url})
        # As the owner: the role, a row, and a table created after the grants (a later migration).
        shell(with_notebooks, owner_url,
              f"from django.db import connection; connection.cursor().execute({sql!r}); "
              "Note.objects.create(title='kept'); "
              "connection.cursor().execute("
              "'CREATE TABLE later (n int); INSERT INTO later VALUES (7)')")
        read = shell(with_notebooks, analyst_url,
                     "from django.db import connection; cursor = connection.cursor(); "
                     "cursor.execute('SELECT n FROM later'); "
                     "print([note.title for note in Note.objects.all()], cursor.fetchone())")
        assert read.split() == ["['kept']", "(7,)"]
        refused = shell(with_notebooks, analyst_url, "Note.objects.create(title='written')",
                        check=False)
        assert refused.returncode != 0
        assert "cannot execute INSERT in a read-only transaction" in refused.stderr
    finally:
        shell(with_notebooks, admin_url, administer +
              f"admin.execute('DROP DATABASE IF EXISTS {database} WITH (FORCE)'); "
              "admin.execute('DROP ROLE IF EXISTS analyst')", check=False)


# What only the ipfs option brings: words in files (the content identifier too), and httpx.
IPFS_WORDS = re.compile(r"ipfs|kubo|\bcids?\b|httpx", re.IGNORECASE)


@pytest.mark.parametrize("notebooks", ["yes", "no"])
def test_ipfs_no_leaves_no_trace_and_a_current_lock(tmp_path, notebooks):
    without, with_ipfs = (generate(tmp_path / answer, notebooks=notebooks, ipfs=answer)
                          for answer in ("no", "yes"))
    traces = [f"{path.relative_to(without)}: {match}"
              for path in project_files(without) if path.name != "uv.lock"
              for match in set(IPFS_WORDS.findall(path.read_text()))]
    assert traces == []
    assert "IPFS" not in (without / ".env").read_text()
    assert IPFS_WORDS.search((with_ipfs / "compose.yaml").read_text())
    # httpx stays locked only as a package of the notebook group's (Jupyter's) own.
    assert ("httpx" in lock_packages(without)) == (notebooks == "yes")
    assert "httpx" in lock_packages(with_ipfs)
    run(["uv", "lock", "--locked", "--offline"], cwd=without)
    run(["uv", "lock", "--locked", "--offline"], cwd=with_ipfs)


# What only the tasks option brings: its packages, its app, its variables, its doc.
TASK_WORDS = re.compile(r"django[-_.]tasks|cronsim|\bTASKS\b|TASKS_|docs/tasks|\.worker\b|"
                        r"manage\.py worker|WorkerLost|QueuedMail|send_mail\b")


@pytest.mark.parametrize(("ipfs", "notebooks"), [("yes", "yes"), ("no", "no")])
def test_tasks_no_leaves_no_trace_and_a_current_lock(tmp_path, ipfs, notebooks):
    without, with_tasks = (generate(tmp_path / answer, ipfs=ipfs, notebooks=notebooks,
                                    tasks=answer) for answer in ("no", "yes"))
    traces = [f"{path.relative_to(without)}: {match}"
              for path in project_files(without) if path.name != "uv.lock"
              for match in set(TASK_WORDS.findall(path.read_text()))]
    assert traces == []
    assert not (without / "my_project" / "worker").exists()
    assert not (without / "docs" / "tasks.md").exists()
    assert {"django-tasks-db", "cronsim", "django-stubs-ext"} & lock_packages(without) == set()
    assert {"django-tasks-db", "cronsim"} <= lock_packages(with_tasks)
    assert TASK_WORDS.search((with_tasks / "config" / "settings.py").read_text())
    run(["uv", "lock", "--locked", "--offline"], cwd=without)
    run(["uv", "lock", "--locked", "--offline"], cwd=with_tasks)


def test_the_tasks_own_names_are_free_slugs_without_them(tmp_path):
    project = generate(tmp_path, project_slug="cronsim", tasks="no")
    assert (project / "cronsim" / "models.py").exists()


def traces(project, words):
    """Where a project's files (but uv.lock) have any of `words`."""
    return [f"{path.relative_to(project)}: {match}"
            for path in project_files(project) if path.name != "uv.lock"
            for match in set(words.findall(path.read_text()))]


def ci_jobs(project):
    return set(yaml.safe_load((project / ".github/workflows/ci.yml").read_text())["jobs"])


# What only the kubernetes option brings: words in files, and the `kubernetes` group's packages.
KUBERNETES_WORDS = re.compile(r"kubernetes|kustomiz|checkov|kubectl|k8s", re.IGNORECASE)


@pytest.mark.parametrize(("ipfs", "tasks", "swarm"), [("yes", "yes", "yes"), ("no", "no", "no")])
def test_kubernetes_no_leaves_no_trace_and_a_current_lock(tmp_path, ipfs, tasks, swarm):
    without, with_kubernetes = (generate(tmp_path / answer, ipfs=ipfs, tasks=tasks, swarm=swarm,
                                         kubernetes=answer) for answer in ("no", "yes"))
    assert traces(without, KUBERNETES_WORDS) == []
    assert not (without / "deploy" / "kubernetes").exists()
    assert KUBERNETES_WORDS.search((with_kubernetes / "README.md").read_text())
    assert ci_jobs(without) == ci_jobs(with_kubernetes) - {"kubernetes"}
    assert_group_pruned(without, with_kubernetes, "kubernetes")


# What only the swarm option brings; not the IPFS node's own swarm (its port, `ipfs swarm
# connect`, the port's name in deploy/kubernetes).
SWARM_WORDS = re.compile(r"(?<!ipfs )(?<!name: )\bswarm\b(?! port)|stack deploy", re.IGNORECASE)


@pytest.mark.parametrize(("ipfs", "kubernetes"), [("yes", "yes"), ("no", "no")])
def test_swarm_no_leaves_no_trace(tmp_path, ipfs, kubernetes):
    without, with_swarm = (generate(tmp_path / answer, ipfs=ipfs, tasks="yes",
                                    kubernetes=kubernetes, swarm=answer)
                           for answer in ("no", "yes"))
    assert traces(without, SWARM_WORDS) == []
    assert not {"swarm.yaml", "swarm-deploy.sh"} & {path.name for path in
                                                    (without / "deploy").iterdir()}
    assert "IMAGE=" not in (without / ".env.example").read_text()
    assert SWARM_WORDS.search((with_swarm / "README.md").read_text())
    assert SWARM_WORDS.search((with_swarm / "docs" / "tasks.md").read_text())
    assert lock_packages(without) == lock_packages(with_swarm)
