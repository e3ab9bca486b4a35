"""The generated project's base image pinning and security rebuild, run for real against a registry.

Nothing here touches the images other tests use. The tests push a copy of python:3.13-slim to a
repository of their own in the registry on 127.0.0.1:5000 (the local Docker Hub mirror on
development machines, a plain registry in the template's GitHub CI), point a generated project's
Dockerfile at it, and "patch" it the way `../shared/containers/up --patch python` patches the
mirror's python: a new build under the same tag, with a new digest and a new
/etc/standin-patch-level. The published image lives in that repository too. Their tags are
deleted from the registry at the end. Docker Hub names (postgres:17 in compose files) are
resolved read-only at SHIPSHAPE_TEST_DOCKER_HUB: the mirror here, Docker Hub in GitHub's CI.

The Python vulnerability check (pip-audit) needs PyPI and the vulnerability database, so these
tests pass --no-audit, except one that shows it fails soft, with a message, when it cannot run.
"""

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import TEMPLATE, generate, run, tool_environment

pytestmark = pytest.mark.xdist_group("security-rebuild")
REGISTRY = os.environ.get("SHIPSHAPE_TEST_REGISTRY", "127.0.0.1:5000")
DOCKER_HUB = os.environ.get("SHIPSHAPE_TEST_DOCKER_HUB", f"http://{REGISTRY}")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
MANIFEST_TYPES = ("application/vnd.oci.image.index.v1+json, "
                  "application/vnd.docker.distribution.manifest.list.v2+json, "
                  "application/vnd.oci.image.manifest.v1+json, "
                  "application/vnd.docker.distribution.manifest.v2+json")


def docker(*arguments, timeout=600):
    return run(["docker", *arguments], cwd=Path.cwd(), timeout=timeout).stdout.strip()


def registry_digest(reference):
    """The test registry's digest for one of the tests' own name:tag."""
    path, tag = reference.split("/", 1)[1].rsplit(":", 1)
    head = urllib.request.Request(f"http://{REGISTRY}/v2/{path}/manifests/{tag}",
                                  method="HEAD", headers={"Accept": MANIFEST_TYPES})
    with urllib.request.urlopen(head, timeout=10) as response:
        return response.headers["Docker-Content-Digest"]


def hub_digest(name):
    """The digest of a Docker Hub name:tag where the scripts resolve it (DOCKER_HUB), as
    Docker itself reads it (buildx imagetools), not as the scripts do."""
    host = re.sub(r"^https?://", "", DOCKER_HUB)
    reference = name if "docker.io" in host else f"{host}/library/{name}"
    output = docker("buildx", "imagetools", "inspect", reference)
    return re.search(r"^Digest:\s+(sha256:[0-9a-f]{64})", output, re.MULTILINE)[1]


def patch(reference, build_dir):
    """Publish a new build of `reference` under the same tag, as `up --patch` does upstream."""
    level = str(time.time_ns())
    build_dir.mkdir(exist_ok=True)
    (build_dir / "Dockerfile").write_text(
        f"FROM {reference}\n"
        "ARG PATCH_LEVEL\n"
        'RUN echo "$PATCH_LEVEL" >/etc/standin-patch-level\n'
        "LABEL standin.patch-level=$PATCH_LEVEL\n")
    docker("build", "--quiet", "--pull", "--build-arg", f"PATCH_LEVEL={level}",
           "--tag", reference, str(build_dir))
    docker("push", "--quiet", reference)
    return level


def delete_from_registry(repository):
    """Remove every tag of a repository from the registry (best effort: deletion may be off)."""
    path = repository.split("/", 1)[1]
    base = f"http://{REGISTRY}/v2/{path}"
    try:
        with urllib.request.urlopen(f"{base}/tags/list", timeout=10) as response:
            tags = json.load(response).get("tags") or []
        for tag in tags:
            head = urllib.request.Request(f"{base}/manifests/{tag}", method="HEAD",
                                          headers={"Accept": MANIFEST_TYPES})
            with urllib.request.urlopen(head, timeout=10) as response:
                digest = response.headers["Docker-Content-Digest"]
            urllib.request.urlopen(urllib.request.Request(f"{base}/manifests/{digest}",
                                                          method="DELETE"), timeout=10).close()
    except OSError:
        pass


def remove_local_images(namespace):
    """docker rmi every local tag and digest reference under the namespace."""
    listed = subprocess.run(["docker", "image", "ls", "--digests", "--format",
                             "{{.Repository}}:{{.Tag}} {{.Repository}}@{{.Digest}}"],
                            capture_output=True, text=True, check=False).stdout.splitlines()
    for line in listed:
        tagged, digested = line.split()
        if tagged.startswith(namespace + "/"):
            reference = digested if tagged.endswith(":<none>") else tagged
            subprocess.run(["docker", "rmi", reference], capture_output=True, check=False)


# Session scope: under xdist a worker may run other modules' tests between these, which would
# tear down (and rebuild) module-scoped fixtures.
@pytest.fixture(scope="session")
def own():
    """A repository of this test run in the registry, holding a copy of python:3.13-slim."""
    namespace = f"{REGISTRY}/shipshape-test-{secrets.token_hex(4)}"
    names = {"base": f"{namespace}/python:3.13-slim", "pin_base": f"{namespace}/pin-python:1",
             "app": f"{namespace}/app", "namespace": namespace}
    docker("pull", "--quiet", "python:3.13-slim")
    for key in ("base", "pin_base"):
        docker("tag", "python:3.13-slim", names[key])
        docker("push", "--quiet", names[key])
    yield names
    for repository in ("python", "pin-python", "app"):
        delete_from_registry(f"{namespace}/{repository}")
    remove_local_images(namespace)
    remove_local_images(namespace)  # the tags first, then what only digests still name


@pytest.fixture(scope="session")
def project(own, tmp_path_factory):
    """A generated project whose Dockerfile starts from the test's own copy of the base image."""
    path = generate(tmp_path_factory.mktemp("rebuild"))
    dockerfile = path / "Dockerfile"
    text, count = re.subn(r"^((?:ARG|FROM)\b.*?)python:3\.13-slim(?:@sha256:[0-9a-f]{64})?",
                          rf"\g<1>{own['base']}", dockerfile.read_text(), flags=re.MULTILINE)
    assert count >= 1, "the Dockerfile no longer names python:3.13-slim"
    dockerfile.write_text(text)
    return path


def script(project, name, *arguments, env=None):
    """Run one of the project's scripts as a user would, from the project directory."""
    return subprocess.run([sys.executable, f"scripts/{name}.py", *arguments], cwd=project,
                          env=env or tool_environment(), text=True, capture_output=True,
                          check=False, timeout=1800)


def rebuild(project, own, *arguments, env=None):
    return script(project, "security_rebuild", *arguments, "--image", f"{own['app']}:latest",
                  "--registry", DOCKER_HUB, "--no-audit", env=env)


def output(result):
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def labels(reference):
    return json.loads(docker("image", "inspect", reference))[0]["Config"]["Labels"]


def step_outputs(text):
    """Parse $GITHUB_OUTPUT as GitHub does: name=value lines and name<<DELIMITER blocks."""
    outputs, lines = {}, iter(text.splitlines())
    for line in lines:
        if "<<" in line:
            name, delimiter = line.split("<<", 1)
            outputs[name] = "\n".join(iter(lambda: next(lines), delimiter))
        else:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


def image_ids(own):
    return set(docker("image", "ls", "--quiet", "--no-trunc", own["app"]).split())


# --- pinning ---

def test_pinning_resolves_every_base_image_from_the_registry(tmp_path):
    path = generate(tmp_path)
    result = script(path, "pin_base_images", "--registry", DOCKER_HUB)
    assert result.returncode == 0, output(result)
    python = hub_digest("python:3.13-slim")
    postgres = hub_digest("postgres:17")
    dockerfile = (path / "Dockerfile").read_text()
    assert re.search(rf"^(ARG \w+=|FROM ){re.escape('python:3.13-slim@' + python)}\b",
                     dockerfile, re.MULTILINE), dockerfile
    for compose in ("compose.yaml", "compose.prod.yaml"):
        text = (path / compose).read_text()
        images = re.findall(r"^\s*image:\s*(\S+)", text, re.MULTILINE)
        assert f"postgres:17@{postgres}" in images, text
        assert all(DIGEST.search(image) for image in images), images
    # Docker accepts the pin as written.
    docker("pull", "--quiet", f"python:3.13-slim@{python}")

    pinned = {name: (path / name).read_text() for name in ("Dockerfile", "compose.yaml")}
    again = script(path, "pin_base_images", "--registry", DOCKER_HUB)
    assert again.returncode == 0, output(again)
    assert "already pinned to the current" in again.stdout
    assert {name: (path / name).read_text() for name in pinned} == pinned
    check = script(path, "pin_base_images", "--registry", DOCKER_HUB, "--check")
    assert check.returncode == 0, output(check)

    # What CI's publish job labels its image with: the pin, read from the Dockerfile.
    github_output = tmp_path / "github-output"
    labelled = script(path, "security_rebuild", "labels",
                      env=tool_environment() | {"GITHUB_OUTPUT": str(github_output)})
    assert labelled.returncode == 0, output(labelled)
    assert step_outputs(github_output.read_text())["labels"].splitlines() == [
        "org.opencontainers.image.base.name=docker.io/library/python:3.13-slim",
        f"org.opencontainers.image.base.digest={python}"]


def test_pins_move_forward_when_the_tag_moves(own, tmp_path):
    dockerfile, compose = tmp_path / "Dockerfile", tmp_path / "compose.yaml"
    dockerfile.write_text(f"FROM --platform=linux/amd64 {own['pin_base']} AS base\n"
                          "FROM base AS prod\n"
                          'CMD ["python3"]\n')
    compose.write_text("services:\n"
                       "  app:\n"
                       "    build: .\n"
                       "    image: app:dev\n"
                       "  worker:\n"
                       f"    image: \"{own['pin_base']}\"  # same base\n")
    files = [str(dockerfile), str(compose)]
    first = pin(*files)
    assert first.returncode == 0, output(first)
    old = registry_digest(own["pin_base"])
    assert f"FROM --platform=linux/amd64 {own['pin_base']}@{old} AS base\n" in dockerfile.read_text()
    assert f"image: \"{own['pin_base']}@{old}\"  # same base" in compose.read_text()
    assert "image: app:dev" in compose.read_text()

    patch(own["pin_base"], tmp_path / "patch")
    new = registry_digest(own["pin_base"])
    assert new != old
    stale = pin("--check", *files)
    assert stale.returncode == 1, output(stale)
    assert f"{old} -> {new}" in stale.stdout
    moved = pin(*files)
    assert moved.returncode == 0, output(moved)
    assert f"FROM --platform=linux/amd64 {own['pin_base']}@{new} AS base\n" in dockerfile.read_text()
    assert f"{own['pin_base']}@{new}" in compose.read_text()
    assert old not in dockerfile.read_text() + compose.read_text()


def pin(*arguments):
    """The template's copy of the pin script, run on files outside a project."""
    script_path = TEMPLATE / "{{cookiecutter.project_slug}}/scripts/pin_base_images.py"
    return subprocess.run([sys.executable, str(script_path), *arguments], text=True,
                          capture_output=True, check=False, timeout=300)


def test_bad_input_is_named(own, tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM {own['namespace']}/no-such-image:1\n")
    unknown = pin(str(dockerfile))
    assert unknown.returncode == 2
    assert "unknown image" in unknown.stderr and "no-such-image:1" in unknown.stderr
    assert "Traceback" not in unknown.stderr

    dockerfile.write_text("FROM python:3.13-slim\n")
    unreachable = pin("--registry", "http://127.0.0.1:9", str(dockerfile))
    assert unreachable.returncode == 2
    assert "cannot reach the registry" in unreachable.stderr
    assert "127.0.0.1:9" in unreachable.stderr and "Traceback" not in unreachable.stderr


# --- the security rebuild, in the order a project lives it ---

@pytest.fixture(scope="session")
def published(project, own):
    """The first run: nothing is published yet, so a rebuild is due; it builds and pushes."""
    result = rebuild(project, own, "rebuild", "--push")
    assert result.returncode == 0, output(result)
    assert "there is no published image" in result.stdout
    return result


def test_the_first_run_builds_and_labels_the_image(published, own):
    base_digest = registry_digest(own["base"])
    assert f"after {base_digest}" in published.stdout
    found = labels(f"{own['app']}:latest")
    assert found["org.opencontainers.image.base.digest"] == base_digest
    assert found["org.opencontainers.image.base.name"] == own["base"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", found["org.opencontainers.image.created"])
    assert f"{own['app']}:{found['org.opencontainers.image.created'][:10]}" in published.stdout
    assert f"Pushed {own['app']}:latest" in published.stdout


def test_with_nothing_new_no_rebuild_is_due_and_nothing_is_built(published, project, own):
    before = image_ids(own), labels(f"{own['app']}:latest")
    result = rebuild(project, own, "rebuild")
    assert result.returncode == 0, output(result)
    assert "No rebuild due" in result.stdout
    assert "the base image is unchanged" in result.stdout
    assert "no OS package has a pending upgrade" in result.stdout
    assert "Nothing built." in result.stdout and "Building" not in result.stdout
    assert (image_ids(own), labels(f"{own['app']}:latest")) == before


def test_a_pending_os_upgrade_makes_a_rebuild_due(published, project, own, tmp_path):
    # A real pending upgrade, made deterministic: the published image with one of its Debian
    # packages (netbase, from Debian's mirror) reinstalled under a lower version number
    # (X~held.back sorts before X). apt in the image then offers the mirror's X as an upgrade,
    # as it does for a package whose fix Debian has published since the image was built.
    held_back = f"{own['app']}:held-back"
    user = json.loads(docker("image", "inspect", f"{own['app']}:latest"))[0]["Config"]["User"]
    (tmp_path / "Dockerfile").write_text(
        f"FROM {own['app']}:latest\n"
        "USER root\n"
        "RUN set -eu; apt-get update -qq; cd /tmp; apt-get download -qq netbase; \\\n"
        "    dpkg-deb -R netbase_*.deb pkg; \\\n"
        '    sed -i "s/^Version: .*/&~held.back/" pkg/DEBIAN/control; \\\n'
        "    dpkg-deb -b pkg netbase-old.deb >/dev/null; dpkg -i netbase-old.deb >/dev/null; \\\n"
        "    rm -rf /tmp/* /var/lib/apt/lists/*\n"
        f"USER {user or 'root'}\n")
    docker("build", "--quiet", "--tag", held_back, str(tmp_path))
    docker("push", "--quiet", held_back)
    version = docker("run", "--rm", "--entrypoint", "dpkg-query", held_back,
                     "-W", "-f", "${Version}", "netbase")
    assert version.endswith("~held.back")

    result = script(project, "security_rebuild", "check", "--image", held_back,
                    "--registry", DOCKER_HUB, "--no-audit")
    assert result.returncode == 0, output(result)
    assert "Rebuild due" in result.stdout
    assert "1 OS package(s) in the published image have pending upgrades" in result.stdout
    assert re.search(rf"netbase {re.escape(version)} -> {re.escape(version[:-len('~held.back')])}"
                     r" from ", result.stdout), result.stdout
    assert "moved" not in result.stdout  # the base image itself is unchanged


def test_the_vulnerability_check_fails_soft_without_the_network(published, project, own,
                                                                 tmp_path):
    # uv cannot fetch pip-audit: offline, with empty caches. The other checks still decide.
    env = tool_environment() | {"UV_OFFLINE": "1", "UV_CACHE_DIR": str(tmp_path / "cache"),
                                "UV_TOOL_DIR": str(tmp_path / "tools")}
    assert shutil.which("uv", path=env["PATH"]), "uv must be on PATH for this test"
    result = script(project, "security_rebuild", "check", "--image", f"{own['app']}:latest",
                    "--registry", DOCKER_HUB, env=env)
    assert result.returncode == 0, output(result)
    assert "Python vulnerability check skipped: pip-audit could not run" in result.stdout
    assert "No rebuild due" in result.stdout


def test_a_patched_base_image_is_noticed_and_rebuilt(published, project, own, tmp_path):
    old_digest = registry_digest(own["base"])
    old_image = labels(f"{own['app']}:latest")
    level = patch(own["base"], tmp_path / "patch")
    new_digest = registry_digest(own["base"])
    assert new_digest != old_digest

    # As in the workflow: the step's outputs feed the Trivy scan and the push.
    github = {"GITHUB_OUTPUT": tmp_path / "output", "GITHUB_STEP_SUMMARY": tmp_path / "summary"}
    started = time.monotonic()
    result = rebuild(project, own, "rebuild", "--push",
                     env=tool_environment() | {k: str(v) for k, v in github.items()})
    seconds = time.monotonic() - started
    assert result.returncode == 0, output(result)
    outputs = step_outputs(github["GITHUB_OUTPUT"].read_text())
    assert outputs["due"] == "true"
    assert outputs["image"] == f"{own['app']}:{outputs['image'].rsplit(':', 1)[1]}"
    assert outputs["tags"].splitlines() == [outputs["image"], f"{own['app']}:latest"]
    assert f"org.opencontainers.image.base.digest={new_digest}" in outputs["labels"].splitlines()
    assert f"after {new_digest}" in github["GITHUB_STEP_SUMMARY"].read_text()
    assert f"moved: {old_digest} -> {new_digest}" in result.stdout
    assert f"Base image digest: before {old_digest}, after {new_digest}" in result.stdout
    assert "OS packages (dpkg) changed from the published image" in result.stdout
    assert "Python packages changed from the published image" in result.stdout
    # The pin moved forward in the Dockerfile.
    assert f"{own['base']}@{new_digest}" in (project / "Dockerfile").read_text()
    # The published image is the new one: new digest label, the patched base's patch level.
    docker("rmi", f"{own['app']}:latest")
    docker("pull", "--quiet", f"{own['app']}:latest")
    new_labels = labels(f"{own['app']}:latest")
    assert new_labels["org.opencontainers.image.base.digest"] == new_digest
    assert new_labels["org.opencontainers.image.created"] >= \
        old_image["org.opencontainers.image.created"]
    patch_level = docker("run", "--rm", "--entrypoint", "cat", f"{own['app']}:latest",
                         "/etc/standin-patch-level")
    assert patch_level == level
    print(f"security rebuild after a base image patch: {seconds:.0f} s")

    # And now nothing is due again.
    after = rebuild(project, own, "check")
    assert after.returncode == 0, output(after)
    assert "No rebuild due" in after.stdout


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
