"""Generate every option combination and hold each project to its own quality gates."""

import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TEMPLATE, generate, option_combinations, run, tool_environment

COMBINATIONS = [
    pytest.param(answers, id=f"combination{number}",
                 marks=pytest.mark.xdist_group(f"combination{number}"))
    for number, answers in enumerate(option_combinations())
]
PRODUCTION_KEY = secrets.token_urlsafe(64)


def read_env_file(path):
    pairs = (line.split("=", 1) for line in path.read_text().splitlines()
             if line.strip() and not line.startswith("#"))
    return {name: value for name, value in pairs}


class Project:
    def __init__(self, path, answers, database_url, ipfs_api_url=None):
        self.path, self.answers = path, answers
        self.slug = path.name
        # The developer's own .env, as generated, with only the database (and IPFS node)
        # swapped for the test ones.
        self.dev_env = tool_environment() | read_env_file(path / ".env") | {
            "DATABASE_URL": f"{database_url}/{self.slug}"} | (
            {"IPFS_API_URL": ipfs_api_url} if ipfs_api_url else {})
        self.production_env = tool_environment() | {
            "SECRET_KEY": PRODUCTION_KEY,
            "ALLOWED_HOSTS": answers.get("domain_name", "example.com"),
            "EMAIL_URL": "smtp://mail.example.com",
            "DATABASE_URL": f"{database_url}/{self.slug}",
        }

    def run(self, *command, env=None):
        return run(list(command), cwd=self.path, env=env or self.dev_env)

    def manage(self, *arguments, env=None):
        return self.run("uv", "run", "--locked", "python", "manage.py", *arguments, env=env)

    def text_files(self):
        """Every file the project has, tracked or not, but for what .gitignore excludes."""
        listed = self.run("git", "ls-files", "--cached", "--others", "--exclude-standard",
                          "-z").stdout
        for name in sorted(filter(None, listed.split("\0"))):
            yield Path(name), (self.path / name).read_text()


@pytest.fixture(scope="session", params=COMBINATIONS)
def project(request, tmp_path_factory, postgres):
    path = generate(tmp_path_factory.mktemp("generated"), **request.param)
    run(["git", "init", "--quiet"], cwd=path)
    run(["git", "add", "--all"], cwd=path)
    with_ipfs = request.param.get("ipfs", "yes") == "yes"
    generated = Project(path, request.param, postgres,
                        request.getfixturevalue("kubo") if with_ipfs else None)
    generated.run("uv", "sync", "--locked", "--quiet")
    return generated


def test_no_template_syntax_is_left(project):
    def markers(name):
        # Django templates are copied unrendered and speak a syntax that looks like Jinja's.
        django_template = "templates" in name.parts and name.suffix == ".html"
        if django_template:
            return ["cookiecutter"]
        # Workflows are copied unrendered too; GitHub's own expressions are ${{ ... }}.
        if name.parts[:2] == (".github", "workflows"):
            return ["{%", "{#", "cookiecutter"]
        # The lock names the cookiecutter package: cruft (the `template` group) depends on it.
        if name == Path("uv.lock"):
            return ["{{", "{%", "{#"]
        return ["{{", "{%", "{#", "cookiecutter"]

    leftovers = [f"{name}: {marker}" for name, text in project.text_files()
                 for marker in markers(name) if marker in text]
    assert leftovers == []


def test_lock_file_matches_pyproject(project):
    project.run("uv", "lock", "--locked")


def test_flake8_finds_nothing(project):
    assert project.run("uv", "run", "--locked", "flake8").stdout == ""


def test_pre_commit_passes_on_every_file(project):
    result = project.run("uv", "run", "--locked", "pre-commit", "run", "--all-files")
    assert "Failed" not in result.stdout
    assert re.search(r"^flake8\.+Passed$", result.stdout, re.MULTILINE)


def test_django_system_checks_pass(project):
    result = project.manage("check", "--fail-level", "WARNING")
    assert "no issues" in result.stdout


def test_models_and_migrations_agree(project):
    project.manage("makemigrations", "--check", "--dry-run")


def test_deploy_checks_pass_with_production_values(project):
    result = project.manage("check", "--deploy", "--fail-level", "WARNING",
                            env=project.production_env)
    assert "no issues" in result.stdout


def test_the_projects_own_tests_pass_against_postgres(project):
    result = project.run("uv", "run", "--locked", "pytest", "-p", "no:cacheprovider",
                         env=project.dev_env | {"HYPOTHESIS_PROFILE": "ci"})
    summary = result.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary), summary
    assert not re.search(r"failed|skipped|error|xfail", summary), summary


def test_secrets_are_in_the_untracked_env_file_only(project):
    env_file = project.path / ".env"
    values = read_env_file(env_file)
    password = values["POSTGRES_PASSWORD"]
    assert "DATABASE_URL" not in values  # its default is built from the password: written once
    assert len(values["SECRET_KEY"]) >= 50 and len(password) >= 24
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert project.run("git", "check-ignore", ".env").stdout.strip() == ".env"
    tracked = project.run("git", "ls-files").stdout.split()  # added at generation
    assert ".env" not in tracked and ".env.example" in tracked
    leaks = [name for name, text in project.text_files() if name != Path(".env")
             and (values["SECRET_KEY"] in text or password in text)]
    assert leaks == []


def test_license_file_follows_the_license_answer(project):
    license_file = project.path / "LICENSE"
    chosen = project.answers.get("license", "MIT")
    assert license_file.exists() == (chosen != "Proprietary")
    if license_file.exists():
        first_line = {"MIT": "MIT License", "BSD-3-Clause": "BSD 3-Clause License"}[chosen]
        assert license_file.read_text().splitlines()[0] == first_line


def test_a_bad_environment_stops_manage_py_with_every_problem_named(project):
    result = subprocess.run(
        ["uv", "run", "--locked", "python", "manage.py", "check"], cwd=project.path,
        env=project.production_env | {"DEBUG": "maybe", "SECRET_KEY": "change-me",
                                      "SECURE_HSTS_SECONDS": "a year"},
        text=True, capture_output=True, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    for problem in ("DEBUG: not a boolean", "SECRET_KEY: still the placeholder",
                    "SECURE_HSTS_SECONDS: not a whole number"):
        assert problem in result.stderr


@pytest.fixture(scope="module")
def localhost_project(tmp_path_factory):
    """The default project for domain_name=localhost, which the hook accepts (a local-only site)."""
    path = generate(tmp_path_factory.mktemp("localhost"), domain_name="localhost")
    run(["uv", "sync", "--locked", "--quiet"], cwd=path)
    return path


def dockerfile_build_environment(project):
    """The placeholders the Dockerfile gives `collectstatic` (production settings, DEBUG off):
    its one BUILD_SETTINGS argument, read from the Dockerfile itself."""
    dockerfile = (project / "Dockerfile").read_text().replace("\\\n", "")
    assert 'env -S "$BUILD_SETTINGS" python manage.py collectstatic' in dockerfile
    (settings,) = re.findall(r'^ARG BUILD_SETTINGS="([^"]*)"$', dockerfile, re.MULTILINE)
    return dict(pair.split("=", 1) for pair in settings.split())


@pytest.mark.xdist_group("localhost")
def test_a_localhost_project_loads_production_settings_as_the_image_build_does(
        localhost_project, tmp_path):
    """The prod image's build runs collectstatic with production settings: their sender address
    (noreply@localhost) must pass, as Django's own EmailValidator lets it."""
    build_env = dockerfile_build_environment(localhost_project)
    assert build_env["DEBUG"] == "false"
    run(["uv", "run", "--locked", "python", "manage.py", "collectstatic", "--noinput",
         "--verbosity", "0"], cwd=localhost_project,
        env=tool_environment() | build_env | {"HOME": str(tmp_path)})
    assert any((localhost_project / "staticfiles").rglob("*.css.br"))


@pytest.mark.xdist_group("localhost")
def test_the_hook_accepts_a_domain_only_where_django_accepts_its_sender(localhost_project,
                                                                        tmp_path):
    """Every domain the hook accepts gives noreply@<domain>, DEFAULT_FROM_EMAIL's default, that
    Django's EmailValidator accepts; every one it refuses for that reason, Django refuses."""
    domains = ["localhost", "example.com", "a.b.example.co.uk", "xn--bcher-kva.example",
               "ex-ample.museum", "intranet", "10.0.0.1", "example.c", "example.123",
               "example.co-", "example.xn--p1ai", "x.y"]
    probe = ("import sys\nfrom django.core.validators import validate_email\n"
             "for domain in sys.argv[1:]:\n"
             "    try:\n        validate_email(f'noreply@{domain}')\n"
             "    except Exception:\n        continue\n    print(domain)\n")
    django_accepts = run(["uv", "run", "--locked", "python", "-c", probe, *domains],
                         cwd=localhost_project).stdout.split()
    hook_accepts = [domain for domain in domains if subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), "-o", str(tmp_path / domain), f"domain_name={domain}"],
        capture_output=True, text=True, env=tool_environment(), check=False).returncode == 0]
    assert hook_accepts == django_accepts
