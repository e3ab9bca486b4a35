"""Template updates: generated projects record their origin and take later template commits.

Every test starts from a throwaway git repository of this checkout's tracked files (uncommitted
edits included), committed as A and tagged with the release in cookiecutter.json, and a bare clone
of it that stands in for GitHub: projects are generated from the bare repository, and commit B
(a new line in the Dockerfile, a changed setting default) reaches them with `cruft update`. All
local: no network, no Docker. Run with -s (or -rP) to see how long cruft takes.
"""

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import QUESTIONS, TEMPLATE, TEXT_ANSWERS, generate, run, tool_environment

pytestmark = pytest.mark.xdist_group("cruft")
BIN = Path(sys.executable).parent  # the template's environment: cruft, cookiecutter
VERSION = QUESTIONS["_shipshape_version"]
PROJECT = "{{cookiecutter.project_slug}}"
# Commit B, file by file in the generated project: (text at A, text at B).
CHANGE = {
    "Dockerfile": ("WORKDIR /app\n", "WORKDIR /app\nENV PYTHONFAULTHANDLER=1\n"),
    "config/settings.py": ('LANGUAGE_CODE = "en-us"\n', 'LANGUAGE_CODE = "en-gb"\n'),
}
CHANGED_BY_AN_UPDATE = {".cruft.json", *CHANGE}


def apply_change(root):
    for name, (before, after) in CHANGE.items():
        path = root / name
        text = path.read_text()
        assert text.count(before) == 1, f"{name}: the test's change no longer fits the template"
        path.write_text(text.replace(before, after))


@pytest.fixture
def environ(tmp_path):
    """No user configuration: cookiecutter's clones, replays and defaults stay in tmp_path, and
    git runs without the user's settings (signing, hooks...) under a fixed identity."""
    config = tmp_path / "cookiecutter.yaml"
    config.write_text(f"cookiecutters_dir: {tmp_path / 'cookiecutters'}\n"
                      f"replay_dir: {tmp_path / 'replay'}\n")
    return tool_environment() | {
        "COOKIECUTTER_CONFIG": str(config),
        "GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig"), "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Shipshape tests", "GIT_AUTHOR_EMAIL": "tests@example.com",
        "GIT_COMMITTER_NAME": "Shipshape tests", "GIT_COMMITTER_EMAIL": "tests@example.com",
    }


class Template:
    """The template's repository (work tree) and the bare repository it publishes to."""

    def __init__(self, root, environ, commit=None):
        """Commit A holds this checkout's files, or those of an older `commit` of it."""
        self.work, self.url, self.environ = root / "shipshape", root / "shipshape.git", environ
        if commit:
            self.work.mkdir()
            archive = subprocess.run(["git", "archive", commit], cwd=TEMPLATE, check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x"], cwd=self.work, input=archive, check=True)
        else:
            self.copy_checkout()
        self.git("init", "--quiet", "--initial-branch", "main")
        self.git("add", "--all")
        self.git("commit", "--quiet", "--message", "A")
        self.git("tag", "--annotate", VERSION, "--message", f"Shipshape {VERSION}")
        self.a = self.head()
        run(["git", "clone", "--quiet", "--bare", str(self.work), str(self.url)], cwd=root,
            env=environ)
        self.git("remote", "add", "origin", str(self.url))

    def copy_checkout(self):
        tracked = run(["git", "ls-files", "-z"], cwd=TEMPLATE).stdout
        for name in filter(None, tracked.split("\0")):
            (self.work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(TEMPLATE / name, self.work / name)

    def commit_checkout(self):
        """Commit B: this checkout's files, from an older commit A."""
        self.git("rm", "--quiet", "-r", ".")
        self.copy_checkout()
        self.git("add", "--all")
        self.git("commit", "--quiet", "--message", "B")
        self.git("push", "--quiet", "origin", "main")
        return self.head()

    def commit_archive(self, commit):
        """The next commit: the files of an older `commit` of this checkout."""
        self.git("rm", "--quiet", "-r", ".")
        archive = subprocess.run(["git", "archive", commit], cwd=TEMPLATE, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x"], cwd=self.work, input=archive, check=True)
        self.git("add", "--all")
        self.git("commit", "--quiet", "--message", commit[:7])
        self.git("push", "--quiet", "origin", "main")
        return self.head()

    def git(self, *arguments):
        return run(["git", *arguments], cwd=self.work, env=self.environ)

    def head(self):
        return self.git("rev-parse", "HEAD").stdout.strip()

    def commit_b(self):
        apply_change(self.work / PROJECT)
        self.git("commit", "--quiet", "--all", "--message", "B")
        self.git("push", "--quiet", "origin", "main")
        return self.head()


@pytest.fixture
def template(tmp_path, environ):
    return Template(tmp_path, environ)


def cruft(*arguments, cwd, environ):
    """The cruft CLI, whatever its exit status (the caller checks it)."""
    return subprocess.run([str(BIN / "cruft"), *arguments], cwd=cwd, env=environ, text=True,
                          capture_output=True, timeout=600, check=False)


def output(result):
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def commit_all(project, environ, message):
    run(["git", "add", "--all"], cwd=project, env=environ)
    run(["git", "commit", "--quiet", "--message", message], cwd=project, env=environ)


def create(template, directory, answers=None):
    """`cruft create` at a fixed ref (the README's --checkout <commit>; here the throwaway
    repository's release tag, which names commit A); the project committed as a user would. Returns the project's path and the seconds cruft took."""
    started = time.perf_counter()
    result = cruft("create", str(template.url), "--checkout", VERSION, "--no-input",
                   "--extra-context", json.dumps(answers or {}), "--output-dir", str(directory),
                   cwd=directory.parent, environ=template.environ)
    seconds = time.perf_counter() - started
    assert result.returncode == 0, output(result)
    (project,) = directory.iterdir()
    run(["git", "init", "--quiet", "--initial-branch", "main"], cwd=project, env=template.environ)
    commit_all(project, template.environ, "Generated by Shipshape")
    return project, seconds


def changed_files(project, environ):
    status = run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=project,
                 env=environ).stdout
    return {line[3:] for line in status.splitlines()}


def read_env_file(path):
    pairs = (line.split("=", 1) for line in path.read_text().splitlines()
             if line.strip() and not line.startswith("#"))
    return dict(pairs)


def test_cruft_records_the_origin_and_check_follows_the_template(template, tmp_path):
    project, seconds = create(template, tmp_path / "out")
    print(f"\ncruft create: {seconds:.2f} s")
    state = json.loads((project / ".cruft.json").read_text())
    assert state["template"] == str(template.url)
    assert (state["commit"], state["checkout"]) == (template.a, VERSION)
    answers = state["context"]["cookiecutter"]
    assert answers["project_slug"] == "my_project" and answers["_shipshape_version"] == VERSION

    result = cruft("check", cwd=project, environ=template.environ)
    assert result.returncode == 0, output(result)
    assert "up to date" in result.stdout

    template.commit_b()
    result = cruft("check", cwd=project, environ=template.environ)
    assert result.returncode == 1, output(result)
    assert "out of date" in result.stdout


def test_an_update_brings_exactly_the_change_and_never_touches_env(template, tmp_path):
    project, _ = create(template, tmp_path / "out")
    env_file = project / ".env"
    secrets, mode = env_file.read_bytes(), env_file.stat().st_mode
    expected = {}
    for name, (before, after) in CHANGE.items():
        expected[name] = (project / name).read_text().replace(before, after)
    # The README's command: cruft as this project's uv.lock pins it.
    documented = ["uv", "run", "--locked", "--only-group", "template", "cruft"]
    run([*documented, "--help"], cwd=project, env=template.environ)  # installs it, untimed
    b = template.commit_b()

    started = time.perf_counter()
    result = run([*documented, "update", "--skip-apply-ask"], cwd=project, env=template.environ)
    print(f"\ncruft update (a small change): {time.perf_counter() - started:.2f} s")
    assert "has been updated" in result.stdout, output(result)
    assert changed_files(project, template.environ) == CHANGED_BY_AN_UPDATE
    for name, text in expected.items():
        assert (project / name).read_text() == text, name
    assert env_file.read_bytes() == secrets and env_file.stat().st_mode == mode
    assert json.loads((project / ".cruft.json").read_text())["commit"] == b
    commit_all(project, template.environ, "Shipshape update")
    result = cruft("check", cwd=project, environ=template.environ)
    assert result.returncode == 0, output(result)

    # The project's own quick checks, with its own .env (check needs no database).
    environ = template.environ | read_env_file(env_file)
    run(["uv", "sync", "--locked", "--quiet"], cwd=project, env=environ)
    manage = ["uv", "run", "--locked", "python", "manage.py"]
    assert "no issues" in run([*manage, "check", "--fail-level", "WARNING"], cwd=project,
                              env=environ).stdout
    language = run([*manage, "shell", "--verbosity", "0", "--command",
                    "from django.conf import settings; print(settings.LANGUAGE_CODE)"],
                   cwd=project, env=environ).stdout
    assert language.strip() == "en-gb"
    run(["uv", "run", "--locked", "pre-commit", "run", "--all-files"], cwd=project, env=environ)


def test_a_conflicting_edit_is_reported_never_overwritten(template, tmp_path):
    project, _ = create(template, tmp_path / "out")
    settings = project / "config/settings.py"
    settings.write_text(settings.read_text().replace('LANGUAGE_CODE = "en-us"',
                                                     'LANGUAGE_CODE = "de"'))
    commit_all(project, template.environ, "Our language")
    secrets = (project / ".env").read_bytes()
    b = template.commit_b()

    result = cruft("update", "--skip-apply-ask", cwd=project, environ=template.environ)
    assert "Applied patch to 'config/settings.py' with conflicts" in result.stderr, output(result)
    # As the README says: cruft exits 0 and records the new commit all the same.
    assert result.returncode == 0, output(result)
    assert json.loads((project / ".cruft.json").read_text())["commit"] == b
    unmerged = run(["git", "diff", "--name-only", "--diff-filter=U"], cwd=project,
                   env=template.environ).stdout.split()
    assert unmerged == ["config/settings.py"]
    text = settings.read_text()
    assert re.search(r'<<<<<<< .*\nLANGUAGE_CODE = "de"\n=======\nLANGUAGE_CODE = "en-gb"\n'
                     r'>>>>>>> ', text), text
    # The rest of the change merged cleanly; .env is as it was.
    assert 'WORKDIR /app\nENV PYTHONFAULTHANDLER=1\n' in (project / "Dockerfile").read_text()
    assert (project / ".env").read_bytes() == secrets


def test_cruft_diff_shows_the_users_changes_and_no_secrets(template, tmp_path):
    project, _ = create(template, tmp_path / "out")
    dockerfile = project / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("EXPOSE 8000\n", "EXPOSE 8080\n"))
    commit_all(project, template.environ, "Our port")
    result = cruft("diff", cwd=project, environ=template.environ)
    assert result.returncode == 0, output(result)
    # From the project to the template: the user's line is the one taken away.
    assert re.search(r"^-EXPOSE 8080$", result.stdout, re.MULTILINE), output(result)
    assert re.search(r"^\+EXPOSE 8000$", result.stdout, re.MULTILINE), output(result)
    secret_key = read_env_file(project / ".env")["SECRET_KEY"]
    assert ".env" not in result.stdout and secret_key not in result.stdout


def test_a_file_the_user_deleted_stays_deleted(template, tmp_path):
    """docs/updates.md: delete what you do not need; updates do not bring it back."""
    project, _ = create(template, tmp_path / "out")
    run(["git", "rm", "--quiet", "Dockerfile"], cwd=project, env=template.environ)
    commit_all(project, template.environ, "We deploy without containers")
    template.commit_b()  # changes the Dockerfile too
    result = cruft("update", "--skip-apply-ask", cwd=project, environ=template.environ)
    assert result.returncode == 0 and "has been updated" in result.stdout, output(result)
    assert changed_files(project, template.environ) == {".cruft.json", "config/settings.py"}
    assert not (project / "Dockerfile").exists()


def test_an_update_keeps_non_default_answers(template, tmp_path):
    answers = TEXT_ANSWERS[1] | {"project_slug": "desk", "license": "Proprietary"}
    project, _ = create(template, tmp_path / "out", answers)
    assert project.name == "desk" and not (project / "LICENSE").exists()
    before = json.loads((project / ".cruft.json").read_text())["context"]["cookiecutter"]
    assert before | answers == before
    template.commit_b()

    started = time.perf_counter()
    result = cruft("update", "--skip-apply-ask", cwd=project, environ=template.environ)
    print(f"\ncruft update (non-default answers): {time.perf_counter() - started:.2f} s")
    assert result.returncode == 0 and "has been updated" in result.stdout, output(result)
    # Rendered with other answers, every file that names the project would have changed too.
    assert changed_files(project, template.environ) == CHANGED_BY_AN_UPDATE
    after = json.loads((project / ".cruft.json").read_text())["context"]["cookiecutter"]
    assert {name: after[name] for name in answers} == answers
    assert 'LANGUAGE_CODE = "en-gb"' in (project / "config/settings.py").read_text()
    assert 'default="Asia/Kolkata"' in (project / "config/env.py").read_text()
    assert not (project / "LICENSE").exists()


def test_cookiecutter_generates_a_release_from_a_git_repository(template, tmp_path):
    template.commit_b()  # main moves on; the tag still names A
    url = f"file://{template.url}"  # a git URL, as gh:org/shipshape expands to one
    for checkout, dockerfile_line in ((VERSION, False), (None, True)):
        out = tmp_path / f"out-{checkout}"
        result = subprocess.run(
            [sys.executable, "-m", "cookiecutter", "--no-input", url, "--output-dir", str(out),
             *(["--checkout", checkout] if checkout else [])],
            env=template.environ, text=True, capture_output=True, timeout=600, check=False)
        assert result.returncode == 0, output(result)
        project = out / "my_project"
        assert ("ENV PYTHONFAULTHANDLER=1" in (project / "Dockerfile").read_text()) \
            == dockerfile_line, checkout
        assert f"generated from Shipshape {VERSION}" in (project / "README.md").read_text()
        assert (project / ".env").stat().st_mode & 0o777 == 0o600


def test_cruft_link_adopts_a_project_generated_with_plain_cookiecutter(template, tmp_path):
    answers = TEXT_ANSWERS[2]
    out = tmp_path / "out"
    run([sys.executable, "-m", "cookiecutter", "--no-input", f"file://{template.url}",
         "--checkout", VERSION, "--output-dir", str(out),
         *(f"{name}={value}" for name, value in answers.items())],
        cwd=tmp_path, env=template.environ)
    project = out / answers["project_slug"]
    run(["git", "init", "--quiet", "--initial-branch", "main"], cwd=project, env=template.environ)
    commit_all(project, template.environ, "Generated by Shipshape")
    template.commit_b()

    # The generated README's instructions: link to the commit it was generated from, with the
    # answers.
    result = cruft("link", str(template.url), "--checkout", template.a, "--no-input",
                   "--extra-context", json.dumps(answers), cwd=project,
                   environ=template.environ)
    assert result.returncode == 0, output(result)
    assert json.loads((project / ".cruft.json").read_text())["commit"] == template.a
    commit_all(project, template.environ, "Link to Shipshape")
    assert cruft("check", cwd=project, environ=template.environ).returncode == 1

    secrets = (project / ".env").read_bytes()
    result = cruft("update", "--skip-apply-ask", cwd=project, environ=template.environ)
    assert result.returncode == 0 and "has been updated" in result.stdout, output(result)
    assert changed_files(project, template.environ) == CHANGED_BY_AN_UPDATE
    assert (project / ".env").read_bytes() == secrets


def test_the_weekly_check_reports_in_the_summary_and_never_fails(template, tmp_path):
    """The workflow's own `run:` script, in a project, with GitHub's summary file."""
    project, _ = create(template, tmp_path / "out")
    workflow = yaml.safe_load((project / ".github/workflows/template-updates.yml").read_text())
    (step,) = [step for job in workflow["jobs"].values() for step in job["steps"]
               if "cruft check" in step.get("run", "")]
    script = tmp_path / "step.sh"
    script.write_text(step["run"])

    def weekly_check():
        summary = tmp_path / "summary.md"
        summary.write_text("")
        result = subprocess.run(["bash", "-e", "-o", "pipefail", str(script)], cwd=project,
                                env=template.environ | {"GITHUB_STEP_SUMMARY": str(summary)},
                                text=True, capture_output=True, timeout=600, check=False)
        assert result.returncode == 0, output(result)
        return summary.read_text().splitlines()[0]

    assert weekly_check() == "### Template: up to date"
    template.commit_b()
    assert weekly_check() == "### Template: changes available"
    state = json.loads((project / ".cruft.json").read_text())
    (project / ".cruft.json").write_text(json.dumps(state | {"template": str(tmp_path / "gone")}))
    assert weekly_check() == "### Template: could not check"
    (project / ".cruft.json").unlink()
    assert weekly_check() == "### Template: not linked"


def test_the_changelog_names_the_release_that_projects_carry(tmp_path):
    changelog = (TEMPLATE / "CHANGELOG.md").read_text()
    sections = re.split(r"^## ", changelog, flags=re.MULTILINE)[1:]
    assert sections[0].startswith("Unreleased\n")
    releases = [re.match(r"(\S+) \((\d{4})-(\d{2})-\d{2}\)\n", section) for section in sections[1:]]
    assert releases and all(releases), "release headings are `## YYYY.MM.N (YYYY-MM-DD)`"
    for release, section in zip(releases, sections[1:], strict=True):
        version, year, month = release.groups()
        assert re.fullmatch(rf"{year}\.{int(month)}\.\d+", version), f"{version}: not CalVer"
        assert "\n**Manual steps:**" in section, f"{version}: no manual steps line"
    assert releases[0][1] == VERSION, "cookiecutter.json's _shipshape_version is not the newest"
    project = generate(tmp_path)
    assert f"generated from Shipshape {VERSION}." in (project / "README.md").read_text()


def test_a_project_from_before_the_first_release_follows_the_changelog(template, tmp_path):
    """CHANGELOG 2026.11.0, manual steps: link, skip .env in .cruft.json, update, unskip."""
    # X: an earlier commit, whose projects have no [tool.cruft] table.
    template.git("checkout", "--quiet", "-b", "earlier")
    earlier = template.work / PROJECT / "pyproject.toml"
    table = re.search(r"^\[tool\.cruft\]\n(#.*\n)*skip = .*\n\n", earlier.read_text(),
                      re.MULTILINE).group()
    earlier.write_text(earlier.read_text().replace(table, ""))
    template.git("commit", "--quiet", "--all", "--message", "X")
    x = template.head()
    template.git("push", "--quiet", "origin", "earlier")
    template.git("checkout", "--quiet", "main")
    out = tmp_path / "out"
    run([sys.executable, "-m", "cookiecutter", "--no-input", f"file://{template.url}",
         "--checkout", x, "--output-dir", str(out)], cwd=tmp_path, env=template.environ)
    project = out / "my_project"
    run(["git", "init", "--quiet", "--initial-branch", "main"], cwd=project, env=template.environ)
    commit_all(project, template.environ, "Generated by Shipshape")
    secrets = (project / ".env").read_bytes()

    result = cruft("link", str(template.url), "--checkout", x, "--no-input", cwd=project,
                   environ=template.environ)
    assert result.returncode == 0, output(result)
    state_file = project / ".cruft.json"
    state_file.write_text(json.dumps(json.loads(state_file.read_text())
                                     | {"skip": [".env", "uv.lock"]}, indent=2) + "\n")
    commit_all(project, template.environ, "Link to Shipshape")
    result = cruft("update", "--skip-apply-ask", cwd=project, environ=template.environ)
    assert result.returncode == 0 and "has been updated" in result.stdout, output(result)
    assert changed_files(project, template.environ) == {".cruft.json", "pyproject.toml"}
    assert table in (project / "pyproject.toml").read_text()
    assert (project / ".env").read_bytes() == secrets

    state = json.loads(state_file.read_text())
    del state["skip"]
    state_file.write_text(json.dumps(state, indent=2) + "\n")
    commit_all(project, template.environ, f"Shipshape {VERSION}")
    template.commit_b()  # the next update: pyproject.toml's table alone keeps .env out
    result = cruft("update", "--skip-apply-ask", cwd=project, environ=template.environ)
    assert result.returncode == 0 and "has been updated" in result.stdout, output(result)
    assert changed_files(project, template.environ) == CHANGED_BY_AN_UPDATE
    assert "skip" not in json.loads(state_file.read_text())
    assert (project / ".env").read_bytes() == secrets


# The last commit before the `kubernetes` and `swarm` questions: its projects have no answer to
# them, and an update answers a new question with its default.
BEFORE_THE_TARGET_OPTIONS = "6792ab04df8c196e0cd5f493880d41377ad4d743"


def test_an_update_from_before_the_target_options_keeps_the_manifests(tmp_path, environ):
    template = Template(tmp_path, environ, commit=BEFORE_THE_TARGET_OPTIONS)
    project, _ = create(template, tmp_path / "out")
    state_file = project / ".cruft.json"
    assert not {"kubernetes", "swarm"} & set(
        json.loads(state_file.read_text())["context"]["cookiecutter"])
    template.commit_checkout()

    result = cruft("update", "--skip-apply-ask", cwd=project, environ=environ)
    assert result.returncode == 0 and "has been updated" in result.stdout, output(result)
    answers = json.loads(state_file.read_text())["context"]["cookiecutter"]
    assert (answers["kubernetes"], answers["swarm"]) == ("yes", "yes")
    for path in ("deploy/kubernetes/base/kustomization.yaml", "docs/kubernetes.md",
                 "deploy/swarm.yaml", "deploy/swarm-deploy.sh", "docs/swarm.md"):
        assert (project / path).exists(), path
    assert "kubernetes = [" in (project / "pyproject.toml").read_text()
    assert "\n  kubernetes:\n" in (project / ".github/workflows/ci.yml").read_text()
    deleted = run(["git", "ls-files", "--deleted"], cwd=project, env=environ).stdout.split()
    assert deleted == []


# The last commit before the reshaping moved files into deploy/ and config/ (docs/reshape.md);
# CHANGELOG.md tells projects generated before it to update to the moves' commit first.
BEFORE_THE_MOVES = "afcda212086088d3a0d82f156d89adda007fba2b"
THE_MOVES = "67abf558e50a3c068e74688cdb5fd902bbb238db"  # CHANGELOG's "moves' commit"


def test_an_edit_follows_a_file_the_template_moved(tmp_path, environ):
    template = Template(tmp_path, environ, commit=BEFORE_THE_MOVES)
    project, _ = create(template, tmp_path / "out")
    compose, gunicorn = project / "compose.prod.yaml", project / "gunicorn.conf.py"
    compose.write_text(compose.read_text() + "# Ours: the host's backups go to tape too.\n")
    gunicorn.write_text(gunicorn.read_text().replace("\ntimeout = 30\n", "\ntimeout = 60\n"))
    commit_all(project, environ, "Our production edits")
    moves = template.commit_archive(THE_MOVES)

    result = cruft("update", "--skip-apply-ask", "--checkout", moves, cwd=project,
                   environ=environ)
    assert result.returncode == 0 and "has been updated" in result.stdout, output(result)
    unmerged = run(["git", "diff", "--name-only", "--diff-filter=U"], cwd=project,
                   env=environ).stdout.split()
    assert unmerged == [], output(result)
    assert not compose.exists() and not gunicorn.exists()
    assert (project / "deploy/compose.yaml").read_text().endswith(
        "# Ours: the host's backups go to tape too.\n")
    assert "\ntimeout = 60\n" in (project / "config/gunicorn.conf.py").read_text()

    # Then to the newest, whose rewrites of those files (their comments) may meet the edits:
    # each edit is still in its file, merged or inside a conflict git reports.
    commit_all(project, environ, "Shipshape: the moves")
    template.commit_checkout()
    result = cruft("update", "--skip-apply-ask", cwd=project, environ=environ)
    assert result.returncode == 0 and "has been updated" in result.stdout, output(result)
    unmerged = run(["git", "diff", "--name-only", "--diff-filter=U"], cwd=project,
                   env=environ).stdout.split()
    for path, edit in (("deploy/compose.yaml", "# Ours: the host's backups go to tape too.\n"),
                       ("config/gunicorn.conf.py", "\ntimeout = 60\n")):
        text = (project / path).read_text()
        assert edit in text and (path in unmerged or "<<<<<<<" not in text), (path, unmerged)
