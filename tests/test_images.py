"""The generated project's scripts/images.py: its own tests, and CI's job that proposes the pins.

The project's tests (scripts/tests) push images of their own to the registry on 127.0.0.1:5000
(SHIPSHAPE_TEST_REGISTRY: the local Docker Hub mirror on development machines, a plain registry
in the template's GitHub CI). Docker Hub names resolve at SHIPSHAPE_TEST_DOCKER_HUB, by default
that mirror; empty means Docker Hub itself, as in GitHub's CI.
"""

import json
import os
import re

import pytest
import yaml

from conftest import generate, run, tool_environment

pytestmark = pytest.mark.xdist_group("images")
REGISTRY = os.environ.get("SHIPSHAPE_TEST_REGISTRY", "127.0.0.1:5000")
DOCKER_HUB = os.environ.get("SHIPSHAPE_TEST_DOCKER_HUB", REGISTRY)
ENVIRONMENT = {"IMAGES_TEST_REGISTRY": REGISTRY, "BASE_IMAGE_REGISTRY": DOCKER_HUB}


def hub_digest(name):
    """The digest of a Docker Hub name:tag, as the Docker engine pulls it."""
    run(["docker", "pull", "--quiet", name], cwd="/")
    details = json.loads(run(["docker", "image", "inspect", name], cwd="/").stdout)[0]
    return next(entry.split("@")[1] for entry in details["RepoDigests"]
                if entry.startswith(name.rsplit(":", 1)[0] + "@"))


def test_the_projects_tests_of_its_image_script_pass(tmp_path):
    """What the generated CI's `images` job runs, here against the local registry."""
    project = generate(tmp_path)
    run(["uv", "sync", "--locked", "--quiet"], cwd=project)
    result = run(["uv", "run", "--locked", "pytest", "-p", "no:cacheprovider", "scripts/tests"],
                 cwd=project, env=tool_environment() | ENVIRONMENT, timeout=1800)
    summary = result.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary), summary
    assert not re.search(r"failed|skipped|error|xfail", summary), summary


# --- the first pins of a fresh project, proposed by its CI ---

GH_STAND_IN = """#!/bin/sh
# GitHub's CLI cannot reach GitHub from here: record the call; no pull request is open yet.
echo "$*" >>"$GH_CALLS"
"""


def test_ci_proposes_pins_for_a_fresh_project_and_leaves_pins_alone(tmp_path):
    """ci.yml's pin-base-images job, its `run:` steps executed as GitHub runs them, in a clone
    of a fresh project whose origin is a local bare repository. Docker Hub is DOCKER_HUB; `gh`
    is a stand-in that records its calls, since GitHub is out of reach."""
    project = generate(tmp_path / "project")
    origin = tmp_path / "origin.git"
    run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(origin)], cwd=tmp_path)
    env = tool_environment() | {
        "GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.com"}

    def git(*arguments, cwd=project):
        return run(["git", *arguments], cwd=cwd, env=env).stdout

    git("init", "--quiet", "--initial-branch=main")
    git("add", "--all")
    git("commit", "--quiet", "--message", "generated")
    git("remote", "add", "origin", str(origin))
    git("push", "--quiet", "origin", "main")
    generated = git("rev-parse", "HEAD")

    bin_dir, calls, summary = tmp_path / "bin", tmp_path / "gh-calls", tmp_path / "summary"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(GH_STAND_IN)
    (bin_dir / "gh").chmod(0o755)
    job = yaml.safe_load((project / ".github/workflows/ci.yml").read_text())["jobs"][
        "pin-base-images"]
    assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
    assert "default_branch" in job["if"] and "push" in job["if"]

    def run_job():
        calls.write_text("")
        summary.write_text("")
        for step in job["steps"]:
            if "run" in step:
                step_env = env | dict(step.get("env", {})) | {
                    "GH_TOKEN": "not-a-token", "PATH": f"{bin_dir}:{env['PATH']}",
                    "GH_CALLS": str(calls), "GITHUB_STEP_SUMMARY": str(summary),
                    "BASE_IMAGE_REGISTRY": DOCKER_HUB}
                run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                    cwd=project, env=step_env)

    run_job()
    # The branch on origin pins every base image; main is untouched.
    assert git("rev-parse", "main", cwd=origin) == generated
    pinned = {name: git("show", f"pin-base-images:{name}", cwd=origin)
              for name in ("Dockerfile", "compose.yaml", "compose.prod.yaml")}
    assert f"FROM python:3.13-slim@{hub_digest('python:3.13-slim')} AS base" in \
        pinned["Dockerfile"]
    for image in ("postgres:17", "caddy:2"):
        assert f"image: {image}@{hub_digest(image)}" in pinned["compose.prod.yaml"], image
    assert f"image: postgres:17@{hub_digest('postgres:17')}" in pinned["compose.yaml"]
    assert "images: pin base images" in git("log", "-1", "--format=%s", "pin-base-images",
                                            cwd=origin)
    asked = calls.read_text().splitlines()
    assert asked[0].startswith("pr list --head pin-base-images")
    assert asked[1].startswith("pr create --head pin-base-images --title Pin base images")

    # Merged (with one pin since moved on by hand, as Dependabot would): nothing more to propose,
    # and an existing pin is not touched.
    git("switch", "--quiet", "main")
    git("merge", "--quiet", "--ff-only", "pin-base-images")
    moved = "sha256:" + "0" * 64
    compose = project / "compose.yaml"
    compose.write_text(re.sub(r"postgres:17@sha256:[0-9a-f]{64}", f"postgres:17@{moved}",
                              compose.read_text()))
    git("commit", "--quiet", "--all", "--message", "images: move postgres")
    run_job()
    assert git("status", "--porcelain") == ""
    assert f"postgres:17@{moved}" in compose.read_text()
    assert calls.read_text() == ""
    assert "Every base image is pinned" in summary.read_text()
