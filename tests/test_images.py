"""The generated project's .github/scripts/images.py: its own tests, and CI's job that proposes
the pins.

The project's tests (.github/scripts/tests) push images of their own to the registry on
127.0.0.1:5000
(SHIPSHAPE_TEST_REGISTRY: the local Docker Hub mirror on development machines, a plain registry
in the template's GitHub CI). Docker Hub names resolve at SHIPSHAPE_TEST_DOCKER_HUB, by default
that mirror; empty means Docker Hub itself, as in GitHub's CI.
"""

import base64
import json
import os
import re
import subprocess
import sys

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
    result = run(["uv", "run", "--locked", "pytest", "-p", "no:cacheprovider",
                  ".github/scripts/tests"],
                 cwd=project, env=tool_environment() | ENVIRONMENT, timeout=1800)
    summary = result.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary), summary
    assert not re.search(r"failed|skipped|error|xfail", summary), summary


# --- the first pins of a fresh project, proposed by its CI ---

# GitHub's CLI cannot reach GitHub from here. The stand-in records each call and keeps the pull
# requests it was asked to open in a JSON file (newest last), which the test edits as a user
# would on GitHub; `pr list --json` answers from that file as gh does (--jq through jq, raw).
GH_STAND_IN = """#!{python}
import json, os, subprocess, sys
arguments = sys.argv[1:]
with open(os.environ["GH_CALLS"], "a") as calls:
    calls.write(" ".join(arguments) + "\\n")
with open(os.environ["GH_PULLS"]) as file:
    pulls = json.load(file)
given = dict(zip(arguments[2::2], arguments[3::2]))
if arguments[:2] == ["pr", "list"]:
    wanted = given.get("--state", "open").upper()
    found = [pull for pull in reversed(pulls) if pull["headRefName"] == given.get("--head")
             and wanted in ("ALL", pull["state"])][:int(given.get("--limit", 30))]
    text = json.dumps([{{field: pull[field] for field in given["--json"].split(",")}}
                       for pull in found])
    if "--jq" in given:
        text = subprocess.run(["jq", "--raw-output", given["--jq"]], input=text, text=True,
                              capture_output=True, check=True).stdout
    sys.stdout.write(text)
elif arguments[:2] == ["pr", "create"]:
    pulls.append({{"number": len(pulls) + 1, "state": "OPEN", "comments": [],
                  "headRefName": given["--head"], "title": given["--title"]}})
    print(f"https://github.com/org/app/pull/{{len(pulls)}}")
elif arguments[:2] == ["pr", "close"]:
    pull = pulls[int(arguments[2]) - 1]
    pull["state"] = "CLOSED"
    given = dict(zip(arguments[3::2], arguments[4::2]))
    if "--comment" in given:
        pull["comments"].append({{"author": {{"login": "github-actions"}},
                                  "body": given["--comment"]}})
else:
    sys.exit(f"gh stand-in: not implemented: {{arguments}}")
with open(os.environ["GH_PULLS"], "w") as file:
    json.dump(pulls, file)
"""

# GitHub's rule for pushes made with a workflow's token (an app without the `workflows`
# permission): refused if the push changes a workflow file. Updating a branch compares its old
# and new commit; creating one, the commits the repository does not have yet. Other pushes (the
# developer's, to main) are not made with the token (PUSHED_WITH_WORKFLOW_TOKEN unset).
PRE_RECEIVE = """#!/bin/sh
[ -n "$PUSHED_WITH_WORKFLOW_TOKEN" ] || exit 0
zero=0000000000000000000000000000000000000000
while read -r old new ref; do
    if [ "$new" = "$zero" ]; then
        continue
    elif [ "$old" = "$zero" ]; then
        changed="$(git rev-list "$new" --not --all |
                   xargs -r -n1 git diff-tree --root --no-commit-id --name-only -r)"
    else
        changed="$(git diff --name-only "$old" "$new")"
    fi
    workflow="$(printf '%s\\n' "$changed" | grep '^.github/workflows/' | head -n1)"
    if [ -n "$workflow" ]; then
        echo "refusing to allow a GitHub App to create or update workflow \\`$workflow\\`" \\
             "without \\`workflows\\` permission ($ref)" >&2
        exit 1
    fi
done
"""


def test_ci_proposes_pins_for_a_fresh_project_and_keeps_the_proposal_current(tmp_path):
    """ci.yml's pin-base-images job, its `run:` steps executed as GitHub runs them, each run in a
    fresh shallow clone of main from a local bare repository that refuses the workflow token's
    pushes as GitHub does. Docker Hub is DOCKER_HUB; `gh` is a stand-in that records its calls
    and the pull requests, since GitHub is out of reach."""
    project = generate(tmp_path / "project")
    origin = tmp_path / "origin.git"
    run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(origin)], cwd=tmp_path)
    (origin / "hooks/pre-receive").write_text(PRE_RECEIVE)
    (origin / "hooks/pre-receive").chmod(0o755)
    env = tool_environment() | {
        "GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.com"}

    def git(*arguments, cwd=project):
        return run(["git", *arguments], cwd=cwd, env=env).stdout.strip()

    def commit_to_main(message, **edits):
        """The developer's push to main (edits: {relative path: function of the old text})."""
        for name, edit in edits.items():
            path = project / name
            path.write_text(edit(path.read_text()))
        git("commit", "--quiet", "--all", "--message", message)
        git("push", "--quiet", "origin", "main")
        return git("rev-parse", "HEAD")

    git("init", "--quiet", "--initial-branch=main")
    git("add", "--all")
    git("commit", "--quiet", "--message", "generated")
    git("remote", "add", "origin", str(origin))
    git("push", "--quiet", "origin", "main")
    generated = git("rev-parse", "HEAD")

    bin_dir, calls, summary = tmp_path / "bin", tmp_path / "gh-calls", tmp_path / "summary"
    pulls = tmp_path / "pulls.json"
    pulls.write_text("[]")
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(GH_STAND_IN.format(python=sys.executable))
    (bin_dir / "gh").chmod(0o755)
    job = yaml.safe_load((project / ".github/workflows/ci.yml").read_text())["jobs"][
        "pin-base-images"]
    assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
    assert "default_branch" in job["if"] and "push" in job["if"]
    basic = base64.b64encode(b"x-access-token:not-a-token").decode()

    def run_job(number):
        """One run on a push to main: actions/checkout's shallow clone, then each `run:`."""
        calls.write_text("")
        summary.write_text("")
        workspace = tmp_path / f"run{number}"
        git("clone", "--quiet", "--depth=1", "--branch=main", origin.as_uri(), str(workspace),
            cwd=tmp_path)
        log = ""
        for step in job["steps"]:
            if "run" in step:
                step_env = env | dict(step.get("env", {})) | {
                    "GH_TOKEN": "not-a-token", "PATH": f"{bin_dir}:{env['PATH']}",
                    "GH_CALLS": str(calls), "GH_PULLS": str(pulls),
                    "GITHUB_STEP_SUMMARY": str(summary), "BASE_IMAGE_REGISTRY": DOCKER_HUB,
                    "PUSHED_WITH_WORKFLOW_TOKEN": "1"}
                log += run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
                            step["run"]], cwd=workspace, env=step_env).stdout
        return log

    def pull_requests():
        return [(pull["number"], pull["state"]) for pull in json.loads(pulls.read_text())]

    def branch():
        return git("rev-parse", "pin-base-images", cwd=origin)

    log = run_job(1)
    # The branch on origin pins every base image; main is untouched.
    assert git("rev-parse", "main", cwd=origin) == generated
    pinned = {name: git("show", f"pin-base-images:{name}", cwd=origin)
              for name in ("Dockerfile", "compose.yaml", "deploy/compose.yaml")}
    assert f"FROM python:3.13-slim@{hub_digest('python:3.13-slim')} AS base" in \
        pinned["Dockerfile"]
    for image in ("postgres:17", "caddy:2"):
        assert f"image: {image}@{hub_digest(image)}" in pinned["deploy/compose.yaml"], image
    assert f"image: postgres:17@{hub_digest('postgres:17')}" in pinned["compose.yaml"]
    assert "images: pin base images" in git("log", "-1", "--format=%s", "pin-base-images",
                                            cwd=origin)
    asked = calls.read_text().splitlines()
    assert asked[0].startswith("pr list --head pin-base-images --state all")
    assert asked[1].startswith("pr create --head pin-base-images --title Pin base images")
    assert pull_requests() == [(1, "OPEN")]
    # The token's basic-auth value is masked before git is given it.
    assert f"::add-mask::{basic}\n" in log

    # Dependabot's first actions update: a workflow change on main. The open pull request
    # already has these pins: it stays, and nothing is pushed.
    proposed = branch()
    dependabot = commit_to_main("actions: bump", **{
        ".github/workflows/ci.yml": lambda text: text.replace(
            "\nname: CI\n", "\n# (an actions update)\nname: CI\n")})
    run_job(2)
    assert branch() == proposed
    assert pull_requests() == [(1, "OPEN")]
    assert "#1 already proposes these pins" in summary.read_text()

    # Then a workflow edit and a Dockerfile edit on main: the proposal must change, and moving
    # the branch to the current main would be refused (the hook, as GitHub). It is recreated
    # there instead, the old pull request closed with a note, a new one opened.
    assert dependabot != generated
    current = commit_to_main("a workflow and the Dockerfile", **{
        ".github/workflows/ci.yml": lambda text: text.replace(
            "# (an actions update)\n", "# (an actions update, and one of ours)\n"),
        "Dockerfile": lambda text: text + "# one more line\n"})
    refused = subprocess.run(
        ["git", "push", "--force", "origin", f"{current}:refs/heads/pin-base-images"],
        cwd=project, env=env | {"PUSHED_WITH_WORKFLOW_TOKEN": "1"}, capture_output=True,
        text=True, check=False)
    assert refused.returncode != 0, refused.stderr  # what a force-push gets
    assert "refusing to allow a GitHub App to create or update workflow" in refused.stderr
    run_job(3)
    assert git("rev-parse", "pin-base-images~1", cwd=origin) == current
    assert git("show", "pin-base-images:Dockerfile", cwd=origin).endswith("# one more line")
    assert git("diff", "--name-only", current, "pin-base-images", cwd=origin) == \
        git("diff", "--name-only", generated, proposed, cwd=origin)  # the pins, nothing else
    assert pull_requests() == [(1, "CLOSED"), (2, "OPEN")]
    asked = calls.read_text().splitlines()
    assert [line.split(" --")[0] for line in asked] == [
        "pr list", "pr close 1", "pr create"], asked
    assert "--comment Superseded:" in asked[1]

    # The user closes #2 without merging: no, thanks. The next runs propose nothing, reopen
    # nothing, push nothing.
    closed = json.loads(pulls.read_text())
    closed[1]["state"] = "CLOSED"
    pulls.write_text(json.dumps(closed))
    declined = branch()
    commit_to_main("more work", **{"README.md": lambda text: text + "\nMore.\n"})
    log = run_job(4)
    assert branch() == declined
    assert pull_requests() == [(1, "CLOSED"), (2, "CLOSED")]
    assert [line.split(" --")[0] for line in calls.read_text().splitlines()] == ["pr list"]
    assert "#2 was closed without merging" in summary.read_text()
    assert "::notice::Pull request #2" in log

    # Merged after all (with one pin since moved on by hand, as Dependabot would): nothing more
    # to propose, and an existing pin is not touched.
    git("fetch", "--quiet", "origin", "pin-base-images")
    git("merge", "--quiet", "--no-edit", "FETCH_HEAD")
    moved = "sha256:" + "0" * 64
    commit_to_main("images: move postgres", **{"compose.yaml": lambda text: re.sub(
        r"postgres:17@sha256:[0-9a-f]{64}", f"postgres:17@{moved}", text)})
    run_job(5)
    workspace = tmp_path / "run5"
    assert git("status", "--porcelain", cwd=workspace) == ""
    assert f"postgres:17@{moved}" in (workspace / "compose.yaml").read_text()
    assert calls.read_text() == ""
    assert "Every base image is pinned" in summary.read_text()
