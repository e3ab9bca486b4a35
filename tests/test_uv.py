"""The uv pin admits newer uv: a project generated today works with the newest uv on PyPI, as a
developer's (or Dependabot's, which runs the uv of its own image) may be. CI, .ci/run and the
Dockerfile install the floor itself (tests/test_workflows.py, the container tier)."""

import re
import tomllib

import pytest

from conftest import TEMPLATE, generate, run, tool_environment

pytestmark = pytest.mark.xdist_group("newest-uv")


def floor(pyproject):
    required = tomllib.loads(pyproject.read_text())["tool"]["uv"]["required-version"]
    match = re.fullmatch(r">=(\d+\.\d+\.\d+)", required)
    assert match, f"required-version {required!r} is not a floor like >=0.13.8"
    return tuple(int(part) for part in match[1].split("."))


@pytest.fixture(scope="module")
def newest_uv(tmp_path_factory):
    """The newest uv on PyPI, installed apart from the one that runs this suite."""
    target = tmp_path_factory.mktemp("newest-uv")
    run(["uv", "pip", "install", "--quiet", "--target", str(target), "--upgrade", "uv"],
        cwd=target)
    uv = target / "bin" / "uv"
    version = run([str(uv), "--version"], cwd=target).stdout.split()[1]
    return uv, tuple(int(part) for part in version.split(".")[:3])


def test_the_template_admits_the_newest_uv(newest_uv):
    uv, version = newest_uv
    # uv checks required-version before anything else: this is the refusal an exact pin gave.
    run([str(uv), "lock", "--check"], cwd=TEMPLATE)
    assert version >= floor(TEMPLATE / "pyproject.toml")


def test_a_generated_project_works_with_the_newest_uv(newest_uv, tmp_path):
    uv, version = newest_uv
    project = generate(tmp_path)
    run(["git", "init", "--quiet"], cwd=project)
    run(["git", "add", "--all"], cwd=project)
    # The developer's own .env, as generated (no database is needed for these checks).
    environ = tool_environment() | dict(
        line.split("=", 1) for line in (project / ".env").read_text().splitlines()
        if line.strip() and not line.startswith("#"))
    environ["PATH"] = f"{uv.parent}:{environ['PATH']}"  # pre-commit's hooks call `uv` too
    assert run(["uv", "--version"], cwd=project, env=environ).stdout.split()[1] == \
        ".".join(map(str, version))
    for command in (["uv", "lock", "--locked"], ["uv", "sync", "--locked", "--quiet"],
                    ["uv", "run", "--locked", "pre-commit", "run", "--all-files"],
                    ["uv", "run", "--locked", "python", "manage.py", "check",
                     "--fail-level", "WARNING"]):
        run(command, cwd=project, env=environ)
    assert version >= floor(project / "pyproject.toml")

