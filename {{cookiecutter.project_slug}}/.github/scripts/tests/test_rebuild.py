"""`images.py check` and `rebuild`, in the order a project lives them.

pip-audit needs PyPI and the vulnerability database, so these pass --no-audit, but for the test
that shows the check fails soft, with a message, when it cannot run.
"""

import json
import re

import pytest

from conftest import docker, images, output, patch, registry


def rebuild(project, own, *arguments, env=None):
    return images(project, *arguments, "--image", f"{own['app']}:latest", "--no-audit", env=env)


def labels(reference):
    return json.loads(docker("image", "inspect", reference))[0]["Config"]["Labels"]


def step_outputs(text):
    """$GITHUB_OUTPUT read as GitHub reads it: name<<DELIMITER blocks."""
    return {name: value for name, _, value in
            re.findall(r"^(\S+)<<(\S+)\n(.*?)\n\2$", text, re.MULTILINE | re.DOTALL)}


# What the workflow passes from docker/metadata-action, as CI's publish job labels its image.
GIVEN = {"org.opencontainers.image.source": "https://github.com/org/app",
         "org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567",
         "org.opencontainers.image.title": "app"}


@pytest.fixture(scope="session")
def published(project, own):
    """The first run: nothing is published yet, so a rebuild is due; it builds and pushes."""
    result = rebuild(project, own, "rebuild", "--push",
                     *(f"--label={name}={value}" for name, value in GIVEN.items()))
    assert result.returncode == 0, output(result)
    assert "there is no published image" in result.stdout
    return result


def test_the_first_run_builds_labels_and_pushes_the_image(published, own):
    found = labels(f"{own['app']}:latest")
    assert found["org.opencontainers.image.base.name"] == own["base"]
    assert found["org.opencontainers.image.base.digest"] == registry(own["base"])
    assert found | GIVEN == found  # not the Dockerfile's "unknown"
    created = found["org.opencontainers.image.created"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created)
    assert f"Pushed {own['app']}:{created[:10]}" in published.stdout
    assert f"Pushed {own['app']}:latest" in published.stdout


def test_with_nothing_new_no_rebuild_is_due_and_nothing_is_built(published, project, own):
    before = docker("image", "ls", "--quiet", "--no-trunc", own["app"])
    result = rebuild(project, own, "rebuild")
    assert result.returncode == 0, output(result)
    assert "No rebuild due: the base image is unchanged" in result.stdout
    assert "no OS package has a pending upgrade" in result.stdout
    assert "Nothing built." in result.stdout
    assert "Building" not in result.stdout
    assert docker("image", "ls", "--quiet", "--no-trunc", own["app"]) == before


def test_a_pending_os_upgrade_makes_a_rebuild_due(published, project, own, tmp_path):
    # A real pending upgrade, made deterministic: the published image with one of its Debian
    # packages (netbase) reinstalled under a lower version (X~held.back sorts before X), so apt
    # offers Debian's X as an upgrade, as it does for a fix published since the image was built.
    held_back = f"{own['app']}:held-back"
    user = json.loads(docker("image", "inspect", f"{own['app']}:latest"))[0]["Config"]["User"]
    (tmp_path / "Dockerfile").write_text(
        f"FROM {own['app']}:latest\n"
        "USER root\n"
        "RUN set -eu; apt-get update -qq; cd /tmp; apt-get download -qq netbase; \\\n"
        "    dpkg-deb -R netbase_*.deb pkg; \\\n"
        '    sed -i "s/^Version: .*/&~held.back/" pkg/DEBIAN/control; \\\n'
        "    dpkg-deb -b pkg old.deb >/dev/null; dpkg -i old.deb >/dev/null; \\\n"
        "    rm -rf /tmp/* /var/lib/apt/lists/*\n"
        f"USER {user or 'root'}\n")
    docker("build", "--quiet", "--tag", held_back, str(tmp_path))
    docker("push", "--quiet", held_back)
    version = docker("run", "--rm", "--entrypoint", "dpkg-query", held_back,
                     "-W", "-f", "${Version}", "netbase")
    assert version.endswith("~held.back")

    result = images(project, "check", "--image", held_back, "--no-audit")
    assert result.returncode == 0, output(result)
    assert "Rebuild due:\n  - 1 OS package(s) have pending upgrades:" in result.stdout
    fixed = version.removesuffix("~held.back")
    assert re.search(rf"netbase {re.escape(version)} -> {re.escape(fixed)} from ", result.stdout)
    assert "the base image is unchanged" not in result.stdout  # not printed when due...
    assert "moved" not in result.stdout  # ...and the base itself did not move


def test_the_vulnerability_check_fails_soft_offline(published, project, own, tmp_path):
    # uv cannot fetch pip-audit: offline, with empty caches. The other checks still decide.
    env = {"UV_OFFLINE": "1", "UV_CACHE_DIR": str(tmp_path / "cache"),
           "UV_TOOL_DIR": str(tmp_path / "tools")}
    result = images(project, "check", "--image", f"{own['app']}:latest", env=env)
    assert result.returncode == 0, output(result)
    assert "Note: Python vulnerability check skipped: pip-audit could not run" in result.stdout
    assert "No rebuild due" in result.stdout


def test_a_label_that_is_not_name_equals_value_is_refused(project, own):
    result = rebuild(project, own, "rebuild", "--label", "org.opencontainers.image.source")
    assert result.returncode == 2, output(result)
    assert "not a label NAME=VALUE: 'org.opencontainers.image.source'" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_patched_base_image_is_noticed_and_rebuilt(published, project, own, tmp_path):
    old_digest, old_labels = registry(own["base"]), labels(f"{own['app']}:latest")
    level = patch(own["base"], tmp_path / "patch")
    new_digest = registry(own["base"])
    assert new_digest != old_digest

    # As in the workflow: the step's outputs feed the Trivy scan and the push.
    github = {"GITHUB_OUTPUT": tmp_path / "output", "GITHUB_STEP_SUMMARY": tmp_path / "summary"}
    result = rebuild(project, own, "rebuild", "--push",
                     *(f"--label={name}={value}" for name, value in GIVEN.items()),
                     env={name: str(path) for name, path in github.items()})
    assert result.returncode == 0, output(result)
    outputs = step_outputs(github["GITHUB_OUTPUT"].read_text())
    assert outputs["due"] == "true"
    assert outputs["tags"].splitlines() == [outputs["image"], f"{own['app']}:latest"]
    assert f"org.opencontainers.image.base.digest={new_digest}" in outputs["labels"].splitlines()
    # The push step labels with this output: CI's labels are in it.
    assert {f"{name}={value}" for name, value in GIVEN.items()} <= set(
        outputs["labels"].splitlines())
    assert f"moved: {old_digest} -> {new_digest}" in github["GITHUB_STEP_SUMMARY"].read_text()
    assert f"Base image digest: before {old_digest}, after {new_digest}" in result.stdout
    assert re.search(r"^OS packages \(dpkg\) changed from .*:\n(  [-+~] .*\n)*", result.stdout,
                     re.MULTILINE)
    assert "Python packages changed from" in result.stdout
    assert f"{own['base']}@{new_digest}" in (project / "Dockerfile").read_text()  # pin moved
    # What is published now is the new image, built on the patched base.
    docker("rmi", f"{own['app']}:latest")
    docker("pull", "--quiet", f"{own['app']}:latest")
    new_labels = labels(f"{own['app']}:latest")
    assert new_labels["org.opencontainers.image.base.digest"] == new_digest
    assert new_labels | GIVEN == new_labels
    assert new_labels["org.opencontainers.image.created"] >= \
        old_labels["org.opencontainers.image.created"]
    assert docker("run", "--rm", "--entrypoint", "cat", f"{own['app']}:latest",
                  "/etc/standin-patch-level") == level

    after = rebuild(project, own, "check")
    assert after.returncode == 0, output(after)
    assert "No rebuild due" in after.stdout
