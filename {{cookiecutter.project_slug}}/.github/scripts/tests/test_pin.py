"""`images.py pin` and `labels`: digests from the registry, written where the tags are."""

import re

from conftest import docker, hub_digest, images, output, patch, registry

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}")


def test_pin_resolves_every_base_image_of_the_project(project, tmp_path):
    result = images(project, "pin")
    assert result.returncode == 0, output(result)
    for name in ("Dockerfile", "compose.yaml", "deploy/compose.yaml"):
        text = (project / name).read_text()
        pinned = re.findall(r"^(?:FROM|\s*image:)\s+(\S+?)@(sha256:\S+)", text, re.MULTILINE)
        unpinned = [image for image in re.findall(r"^\s*image:\s*(\S+)", text, re.MULTILINE)
                    if not DIGEST.search(image)]
        assert pinned, text
        assert unpinned == [], text
        for image, digest in pinned:
            if "/images-test-" not in image:  # the tests' own copy of the base: see below
                assert digest == hub_digest(image), image
    base = re.search(r"^FROM (\S+)@(\S+)", (project / "Dockerfile").read_text(), re.MULTILINE)
    assert base[2] == registry(base[1])
    docker("pull", "--quiet", f"{base[1]}@{base[2]}")  # Docker takes the pin as written

    pinned = {name: (project / name).read_text() for name in ("Dockerfile", "compose.yaml")}
    again = images(project, "pin")
    assert again.returncode == 0, output(again)
    assert "already pinned to the current" in again.stdout
    assert {name: (project / name).read_text() for name in pinned} == pinned
    check = images(project, "pin", "--check")
    assert check.returncode == 0, output(check)

    # What CI's publish job labels its image with: the pin, read from the Dockerfile.
    github_output = tmp_path / "github-output"
    labels = images(project, "labels", env={"GITHUB_OUTPUT": str(github_output)})
    assert labels.returncode == 0, output(labels)
    assert labels.stdout.splitlines() == [
        f"org.opencontainers.image.base.name={base[1]}",
        f"org.opencontainers.image.base.digest={base[2]}"]
    assert labels.stdout.strip() in github_output.read_text()


def test_hub_names_are_labelled_with_their_full_name(project, tmp_path):
    (tmp_path / ".github/scripts").mkdir(parents=True)
    script = ".github/scripts/images.py"
    (tmp_path / script).write_text((project / script).read_text())
    (tmp_path / "Dockerfile").write_text("FROM python:3.13-slim AS base\nFROM base AS prod\n")
    labels = images(tmp_path, "labels")
    assert labels.returncode == 0, output(labels)
    assert labels.stdout.splitlines() == [
        "org.opencontainers.image.base.name=docker.io/library/python:3.13-slim",
        f"org.opencontainers.image.base.digest={hub_digest('python:3.13-slim')}"]


def test_pins_move_forward_when_the_tag_moves(own, project, tmp_path):
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
    first = images(project, "pin", *files)
    assert first.returncode == 0, output(first)
    old = registry(own["pin_base"])
    assert f"FROM --platform=linux/amd64 {own['pin_base']}@{old} AS base\n" in dockerfile.read_text()
    assert f"image: \"{own['pin_base']}@{old}\"  # same base" in compose.read_text()
    assert "image: app:dev\n" in compose.read_text()  # compose builds it: nothing to pin

    patch(own["pin_base"], tmp_path / "patch")
    new = registry(own["pin_base"])
    assert new != old
    stale = images(project, "pin", "--check", *files)
    assert stale.returncode == 1, output(stale)
    assert f"{old} -> {new}" in stale.stdout
    assert "2 pin(s) missing or behind" in stale.stderr
    kept = images(project, "pin", "--unpinned-only", *files)
    assert kept.returncode == 0, output(kept)
    assert old in dockerfile.read_text()  # an existing pin stays as it is
    moved = images(project, "pin", *files)
    assert moved.returncode == 0, output(moved)
    assert f"FROM --platform=linux/amd64 {own['pin_base']}@{new} AS base\n" in dockerfile.read_text()
    assert f"{own['pin_base']}@{new}" in compose.read_text()
    assert old not in dockerfile.read_text() + compose.read_text()


def test_bad_input_is_named(own, project, tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM {own['namespace']}/no-such-image:1\n")
    unknown = images(project, "pin", str(dockerfile))
    assert unknown.returncode == 2
    assert "no-such-image:1: not found" in unknown.stderr

    dockerfile.write_text("FROM python:3.13-slim\n")
    unreachable = images(project, "pin", str(dockerfile),
                         env={"BASE_IMAGE_REGISTRY": "http://127.0.0.1:9"})
    assert unreachable.returncode == 2
    assert "cannot resolve python:3.13-slim at 127.0.0.1:9" in unreachable.stderr
    assert "connection refused" in unreachable.stderr

    missing = images(project, "pin", str(tmp_path / "Containerfile"))
    assert missing.returncode == 2
    assert "No such file or directory" in missing.stderr
    assert [result for result in (unknown, unreachable, missing)
            if "Traceback" in result.stderr] == []
    assert dockerfile.read_text() == "FROM python:3.13-slim\n"
