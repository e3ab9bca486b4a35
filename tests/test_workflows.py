"""Lint tier: the CI definitions of the template and of every generated combination.

check-jsonschema (GitHub's workflow and Dependabot schemas), zizmor (offline, pedantic persona:
zero findings), shellcheck (every `run:` block and every shell script), hadolint (the Dockerfile),
plus the house rules zizmor does not spell out: actions pinned to full commit SHAs with a version
comment, the same SHA for an action everywhere, `permissions: {}` at the top and per job, and
checkout without persisted credentials. Every tool installs from PyPI and runs offline.
"""

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import TEMPLATE, generate, option_combinations

pytestmark = pytest.mark.xdist_group("workflows")
BIN = Path(sys.executable).parent  # the template's environment: check-jsonschema, zizmor...
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<action>[^@\s]+)@(?P<ref>\S+)(?P<comment>.*)$")


def tool(name, *arguments, cwd=TEMPLATE):
    return subprocess.run([str(BIN / name), *arguments], cwd=cwd, text=True,
                          capture_output=True, check=False, timeout=300)


@pytest.fixture(scope="session")
def projects(tmp_path_factory):
    """Every generated combination (generation only: no uv sync, no network)."""
    return [generate(tmp_path_factory.mktemp("lint"), **answers)
            for answers in option_combinations()]


@pytest.fixture(scope="session")
def roots(projects):
    """The template repository and every generated project."""
    return [TEMPLATE, *projects]


@pytest.fixture(scope="session")
def workflows(roots):
    found = [path for root in roots for path in sorted((root / ".github/workflows").glob("*.y*ml"))]
    names = {path.name for path in found}
    assert {"ci.yml", "security-rebuild.yml"} <= names
    return found


def load(path):
    return yaml.safe_load(path.read_text())


def failure(result):
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def test_every_generated_project_has_its_ci_files(projects):
    for project in projects:
        for name in (".github/workflows/ci.yml", ".github/workflows/security-rebuild.yml",
                     ".github/workflows/template-updates.yml", ".github/dependabot.yml",
                     ".github/scripts/images.py", ".github/scripts/tests/pytest.ini", "Dockerfile"):
            assert (project / name).is_file(), f"{project.name}: {name} missing"


def test_workflows_match_githubs_schema(workflows):
    result = tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows",
                  *map(str, workflows))
    assert result.returncode == 0, failure(result)


def test_dependabot_configuration_matches_its_schema(projects):
    files = [str(project / ".github/dependabot.yml") for project in projects]
    result = tool("check-jsonschema", "--builtin-schema", "vendor.dependabot", *files)
    assert result.returncode == 0, failure(result)


def test_dependabot_covers_every_ecosystem_with_a_cooldown_and_groups(projects):
    for project in projects:
        config = load(project / ".github/dependabot.yml")
        updates = {update["package-ecosystem"]: update for update in config["updates"]}
        assert set(updates) == {"uv", "docker", "docker-compose", "github-actions"}
        for update in updates.values():
            assert update["cooldown"]["default-days"] >= 3
            assert update.get("groups") or update.get("multi-ecosystem-group")
        # Dependabot looks for compose files only in the directories it is given.
        naming_images = {"/" + path.parent.relative_to(project).as_posix().strip(".")
                         for path in project.rglob("compose.yaml")
                         if "image:" in path.read_text()}
        assert naming_images == {"/", "/deploy"}
        assert set(updates["docker-compose"]["directories"]) == naming_images


def test_zizmor_finds_nothing(roots):
    for root in roots:
        result = tool("zizmor", "--offline", "--persona", "pedantic", "--no-progress",
                      "--format", "plain", "--color", "never", ".github", cwd=root)
        assert result.returncode == 0, f"{root.name}: {failure(result)}"
        assert "No findings to report" in result.stdout, f"{root.name}: {failure(result)}"


def run_blocks(workflows):
    """{(file name, job, step): script} for every `run:` step, identical copies once."""
    blocks = {}
    for path in workflows:
        for job_name, job in load(path)["jobs"].items():
            for number, step in enumerate(job.get("steps", [])):
                if "run" in step:
                    blocks.setdefault(step["run"], (path.name, job_name, step.get("name", number)))
    return {where: script for script, where in blocks.items()}


def test_run_steps_expand_no_github_expressions(workflows):
    """Template injection: event data reaches scripts through env:, never as ${{ }} in code."""
    leaks = [where for where, script in run_blocks(workflows).items() if "${{" in script]
    assert leaks == []


def test_run_steps_pass_shellcheck(workflows, tmp_path):
    blocks = run_blocks(workflows)
    assert len(blocks) >= 10
    problems = []
    for number, (where, script) in enumerate(blocks.items()):
        path = tmp_path / f"step{number}.sh"
        # GitHub runs these with `bash -e` (defaults: shell: bash adds -o pipefail).
        path.write_text("#!/usr/bin/env bash\nset -eo pipefail\n" + script)
        result = tool("shellcheck", "--shell=bash", str(path))
        if result.returncode != 0:
            problems.append(f"{where}:\n{result.stdout}")
    assert problems == [], "\n".join(problems)


def shell_scripts(root):
    for path in sorted(root.rglob("*")):
        if not path.is_file() or {".git", ".venv", "node_modules"} & set(path.parts):
            continue
        if path.suffix in (".sh", ".bash"):
            yield path
        elif path.suffix == "" and path.stat().st_size < 1_000_000:
            first = path.read_bytes()[:64]
            if re.match(rb"^#!\s*/(usr/)?bin/(env\s+)?(ba)?sh\b", first):
                yield path


def test_shell_scripts_pass_shellcheck(projects):
    scripts = [TEMPLATE / ".ci/run"]
    for project in projects:
        scripts += list(shell_scripts(project))
    result = tool("shellcheck", *map(str, scripts))
    assert result.returncode == 0, failure(result)


def test_dockerfiles_pass_hadolint(projects):
    for project in projects:
        result = tool("hadolint", "--no-color", str(project / "Dockerfile"))
        assert result.returncode == 0, f"{project.name}: {failure(result)}"


def test_actions_are_pinned_to_commit_shas_with_their_version(workflows):
    seen = {}
    for path in workflows:
        for line in path.read_text().splitlines():
            match = USES.match(line)
            if not match:
                continue
            where = f"{path.parent.parent.parent.name}/{path.name}: {line.strip()}"
            assert re.fullmatch(r"[0-9a-f]{40}", match["ref"]), f"not a commit SHA: {where}"
            assert re.match(r"^\s+# v\d+\.\d+\.\d+\s*$", match["comment"]), \
                f"no version comment: {where}"
            seen.setdefault(match["action"].split("/")[1], set()).add(
                (match["ref"], match["comment"].strip()))
    assert {"checkout", "setup-uv", "build-push-action", "trivy-action"} <= set(seen)
    assert {name: pins for name, pins in seen.items() if len(pins) > 1} == {}, \
        "one action pinned to different commits"


def test_permissions_are_empty_by_default_and_granted_per_job(workflows):
    for path in workflows:
        workflow = load(path)
        assert workflow["permissions"] == {}, path
        for name, job in workflow["jobs"].items():
            assert "permissions" in job, f"{path.name}: job {name} has no permissions"
            assert "write-all" not in str(job["permissions"])


def test_checkout_persists_no_credentials(workflows):
    for path in workflows:
        for name, job in load(path)["jobs"].items():
            for step in job.get("steps", []):
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step.get("with", {}).get("persist-credentials") is False, \
                        f"{path.name}: job {name}"


def test_the_security_rebuild_is_scheduled_in_a_file_of_its_own(projects):
    for project in projects:
        ci = load(project / ".github/workflows/ci.yml")
        rebuild = load(project / ".github/workflows/security-rebuild.yml")
        # PyYAML reads the key `on` as True.
        assert "schedule" not in ci[True]
        assert rebuild[True]["schedule"][0]["cron"]
        assert "workflow_dispatch" in rebuild[True]
        steps = [step for job in rebuild["jobs"].values() for step in job["steps"]]
        scan = next(step for step in steps if "trivy-action" in step.get("uses", ""))
        assert scan["with"] | {"exit-code": "1"} == scan["with"]
        assert scan["with"]["ignore-unfixed"] is True
        assert scan["with"]["severity"] == "HIGH,CRITICAL"
        publish = next(step for step in steps if "build-push-action" in step.get("uses", ""))
        assert publish["with"]["sbom"] is True
        assert publish["with"]["provenance"] == "mode=max"
        assert steps.index(scan) < steps.index(publish)


def test_the_image_script_is_tested_in_a_ci_job_with_docker_and_a_registry(projects):
    """.github/scripts/tests need Docker and a registry: their own job runs them, and the project's
    plain `pytest` (the `test` job, the dev container) does not collect them."""
    for project in projects:
        job = load(project / ".github/workflows/ci.yml")["jobs"]["images"]
        (registry,) = job["services"].values()
        assert registry["ports"] == ["127.0.0.1:5000:5000"]
        assert job["env"]["IMAGES_TEST_REGISTRY"] == "127.0.0.1:5000"
        runs = [step.get("run") for step in job["steps"]]
        assert "uv run --locked pytest .github/scripts/tests" in runs
        pytest_options = tomllib.loads((project / "pyproject.toml").read_text())["tool"][
            "pytest"]["ini_options"]
        # The project's tests, its apps' and its notebooks': never .github/.
        notebooks = ["notebooks"] if (project / "notebooks").exists() else []
        assert pytest_options["testpaths"] == ["tests", project.name, *notebooks]


def test_the_template_check_is_weekly_in_a_file_of_its_own(projects):
    """cruft check on a schedule of its own (its behaviour is tested in test_cruft.py)."""
    for project in projects:
        workflow = load(project / ".github/workflows/template-updates.yml")
        assert set(workflow[True]) == {"schedule", "workflow_dispatch"}
        assert workflow[True]["schedule"][0]["cron"].endswith(" * * 1")  # weekly
        (job,) = workflow["jobs"].values()
        assert job["permissions"] == {"contents": "read"}
        assert "continue-on-error" not in job  # it does not fail; it need not be forgiven
        assert any("cruft check" in step.get("run", "") for step in job["steps"])


def test_the_template_ci_runs_the_whole_suite():
    workflow = load(TEMPLATE / ".github/workflows/ci.yml")
    assert {"push", "pull_request"} <= set(workflow[True])
    runs = [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]
    assert "uv run --locked pytest" in runs


def test_ci_runs_once_per_push_pull_requests_and_main_only(roots):
    """An unfiltered `push` beside `pull_request` runs CI twice for every push to a branch
    with a pull request: pushes count on main (and the template's release tags) only."""
    for root in roots:
        trigger = load(root / ".github/workflows/ci.yml")[True]
        assert "pull_request" in trigger, root.name
        assert trigger["push"]["branches"] == ["main"], root.name
        assert set(trigger["push"]) == ({"branches", "tags"} if root == TEMPLATE else
                                        {"branches"}), root.name


def test_one_uv_version_everywhere(roots, workflows, projects):
    """pyproject.toml's required-version is the only place a uv version is written: a floor, so
    that newer uv (yours, Dependabot's) still runs; setup-uv installs that floor exactly
    (resolution-strategy: lowest), and so do .ci/run and the Dockerfile."""
    required = {tomllib.loads((root / "pyproject.toml").read_text())["tool"]["uv"]
                ["required-version"] for root in roots}
    assert len(required) == 1 and re.fullmatch(r">=\d+\.\d+\.\d+", *required), required
    version = required.pop().removeprefix(">=")
    setup_steps = {(path.name, job_name): step for path in workflows
                   for job_name, job in load(path)["jobs"].items() for step in job["steps"]
                   if "/setup-uv@" in step.get("uses", "")}
    assert len(setup_steps) >= 4
    floors = {where: step["with"] for where, step in setup_steps.items()}
    assert all(inputs["version-file"] == "pyproject.toml"
               and inputs["resolution-strategy"] == "lowest" for inputs in floors.values()), floors
    assert version not in (TEMPLATE / ".ci/run").read_text()
    for project in projects:
        dockerfile = (project / "Dockerfile").read_text()
        assert version not in dockerfile and '["required-version"]' in dockerfile, project.name


def test_the_weekly_rebuild_publishes_without_code_scanning(projects):
    """The SARIF upload fails where code scanning is off (private repositories without
    Advanced Security); that must not keep a clean image from being published."""
    for project in projects:
        job = load(project / ".github/workflows/security-rebuild.yml")["jobs"]["rebuild"]
        assert job["permissions"]["actions"] == "read"
        steps = job["steps"]
        upload = next(step for step in steps if "/upload-sarif@" in step.get("uses", ""))
        assert upload["continue-on-error"] is True
        publish = next(step for step in steps if "/build-push-action@" in step.get("uses", ""))
        assert steps.index(upload) < steps.index(publish)
        assert "if" not in publish  # success(): only the scan and the context guard gate it


def test_the_image_and_the_rebuild_check_ask_apt_the_same_question(projects):
    """A check that simulated more than the Dockerfile installs would find a rebuild due
    forever: both use `upgrade --with-new-pkgs`."""
    for project in projects:
        dockerfile = (project / "Dockerfile").read_text()
        check = (project / ".github/scripts/images.py").read_text()
        # Every stage that upgrades (base; with IPFS, backup too) upgrades the same way.
        assert set(re.findall(r"apt-get upgrade\b.*", dockerfile)) == {
            "apt-get upgrade --yes --with-new-pkgs \\"}, project.name
        assert re.findall(r"apt-get --simulate .*upgrade", check) == [
            "apt-get --simulate --with-new-pkgs upgrade"], project.name


def test_the_weekly_rebuild_publishes_only_from_the_default_branch(projects):
    """The schedule runs on the default branch; a manual run can start from any branch, whose
    image must not become :latest. It decides, says it publishes nothing, and stops."""
    for project in projects:
        jobs = load(project / ".github/workflows/security-rebuild.yml")["jobs"]
        guard = "github.ref == format('refs/heads/{0}', github.event.repository.default_branch)"
        condition = " ".join(jobs["rebuild"]["if"].split())
        assert condition == (f"(github.event_name == 'schedule' || {guard}) && "
                             "(needs.decide.outputs.due == 'true' || inputs.force)"), condition
        notice = next(step for step in jobs["decide"]["steps"] if "if" in step)
        # A scheduled run's event has no repository (so no default_branch to compare).
        assert notice["if"] == f"github.event_name != 'schedule' && {guard.replace('==', '!=')}"
        assert "::notice::" in notice["run"] and "publishes nothing" in notice["name"]
        assert "report" in jobs and "rebuild" in jobs["report"]["needs"]


def test_the_weekly_rebuild_labels_its_image_as_ci_publishes_it(projects, tmp_path):
    """source and revision (and the rest of metadata-action's labels) reach the rebuild's build:
    the same action with the same inputs as CI's publish job, its labels handed to images.py
    one --label each. The rebuild step's script runs here with a python3 that records its
    arguments (the build itself: .github/scripts/tests/test_rebuild.py)."""
    project = projects[0]
    publish = load(project / ".github/workflows/ci.yml")["jobs"]["publish"]["steps"]
    steps = load(project / ".github/workflows/security-rebuild.yml")["jobs"]["rebuild"]["steps"]
    ci_meta = next(step for step in publish if step.get("id") == "meta")
    meta = next(step for step in steps if step.get("id") == "meta")
    assert meta["uses"] == ci_meta["uses"]
    assert meta["with"] == {name: value for name, value in ci_meta["with"].items()
                            if name != "labels"}  # CI adds the base labels; images.py does here
    step = next(step for step in steps if step.get("id") == "rebuild")
    assert steps.index(meta) < steps.index(step)
    assert step["env"] == {"OCI_LABELS": "${{ steps.meta.outputs.labels }}"}

    bin_dir, recorded = tmp_path / "bin", tmp_path / "arguments.json"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(recorded)!r}, 'w').write(json.dumps(sys.argv[1:]))\n")
    (bin_dir / "python3").chmod(0o755)
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    subprocess.run(["git", "init", "--quiet"], cwd=workspace, check=True)
    # metadata-action's `labels` output: one NAME=VALUE a line (values may hold spaces).
    given = ["org.opencontainers.image.title=app",
             "org.opencontainers.image.description=Orders and refunds, more",
             "org.opencontainers.image.source=https://github.com/Org/App",
             "org.opencontainers.image.revision=0123456789abcdef0123456789abcdef01234567"]
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=workspace,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "GITHUB_REPOSITORY": "Org/App",
             "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
             "OCI_LABELS": "\n".join(given) + "\n"},
        text=True, capture_output=True, check=False, timeout=60)
    assert result.returncode == 0, failure(result)
    assert json.loads(recorded.read_text()) == [
        ".github/scripts/images.py", "rebuild", "--force", "--no-audit", "--image",
        "ghcr.io/org/app:latest", *(part for label in given for part in ("--label", label))]
    # The pin it moved is not committed: the summary says what follows from that.
    assert "Not committed by this run" in (tmp_path / "summary").read_text()
