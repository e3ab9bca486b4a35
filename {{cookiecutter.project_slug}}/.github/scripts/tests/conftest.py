"""What the tests of .github/scripts/images.py share: a registry repository of their own, a
project copy.

They push to the registry at $IMAGES_TEST_REGISTRY (default 127.0.0.1:5000; start one with
`docker run -d -p 127.0.0.1:5000:5000 registry:3`), in a repository named for the run, and delete
its tags at the end. Docker Hub names are resolved as images.py resolves them: at Docker Hub, or
at the mirror $BASE_IMAGE_REGISTRY.
"""

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from images import base_image

REGISTRY = os.environ.get("IMAGES_TEST_REGISTRY", "127.0.0.1:5000")
PROJECT = Path(__file__).resolve().parents[3]
MANIFESTS = ("application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
             "application/vnd.docker.distribution.manifest.list.v2+json, "
             "application/vnd.docker.distribution.manifest.v2+json")


def docker(*arguments):
    result = subprocess.run(["docker", *arguments], text=True, capture_output=True, check=False)
    assert result.returncode == 0, f"docker {' '.join(arguments)}: {result.stderr}"
    return result.stdout.strip()


def images(project, *arguments, env=None):
    """Run .github/scripts/images.py as a user would, from the project directory."""
    return subprocess.run([sys.executable, ".github/scripts/images.py", *arguments], cwd=project,
                          env=os.environ | (env or {}), text=True, capture_output=True,
                          check=False, timeout=1800)


def output(result):
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def registry(reference, method="HEAD", digest=None):
    """Ask the test registry about one of the tests' own name:tag, over its HTTP API."""
    path, tag = reference.split("/", 1)[1].rsplit(":", 1)
    request = urllib.request.Request(f"http://{REGISTRY}/v2/{path}/manifests/{digest or tag}",
                                     method=method, headers={"Accept": MANIFESTS})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers["Docker-Content-Digest"]


def hub_digest(name):
    """The digest of a Docker Hub name:tag, as the Docker engine pulls it (through its mirror)."""
    docker("pull", "--quiet", name)
    repository = name.rsplit(":", 1)[0]
    return next(entry.split("@")[1] for entry in json.loads(docker(
        "image", "inspect", name))[0]["RepoDigests"] if entry.startswith(repository + "@"))


def patch(reference, build_dir):
    """Publish a new build of `reference` under the same tag, as upstream does with a fix."""
    level = str(time.time_ns())
    build_dir.mkdir(exist_ok=True)
    (build_dir / "Dockerfile").write_text(f"FROM {reference}\nARG LEVEL\n"
                                          'RUN echo "$LEVEL" >/etc/standin-patch-level\n')
    docker("build", "--quiet", "--pull", "--build-arg", f"LEVEL={level}", "--tag", reference,
           str(build_dir))
    docker("push", "--quiet", reference)
    return level


@pytest.fixture(scope="session")
def own():
    """A repository of this run in the registry, with copies of the Dockerfile's base image."""
    namespace = f"{REGISTRY}/images-test-{secrets.token_hex(4)}"
    names = {"base": f"{namespace}/python:3", "pin_base": f"{namespace}/pin-python:1",
             "app": f"{namespace}/app", "namespace": namespace}
    base = base_image(PROJECT / "Dockerfile", "prod").split("@")[0]
    docker("pull", "--quiet", base)
    for key in ("base", "pin_base"):
        docker("tag", base, names[key])
        docker("push", "--quiet", names[key])
    yield names
    app = names["app"]
    for reference in (names["base"], names["pin_base"], f"{app}:latest", f"{app}:held-back"):
        try:  # best effort: a registry may not allow deletion
            registry(reference, "DELETE", registry(reference))
        except OSError:
            pass
    listed = map(json.loads, docker("image", "ls", "--format", "json").splitlines())
    ids = {image["ID"] for image in listed if image["Repository"].startswith(namespace)}
    subprocess.run(["docker", "rmi", "--force", *ids], capture_output=True, check=False)


@pytest.fixture(scope="session")
def project(own, tmp_path_factory):
    """A copy of this project whose Dockerfile starts from the tests' own copy of its base."""
    copy = tmp_path_factory.mktemp("project") / PROJECT.name
    shutil.copytree(PROJECT, copy, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".env", "__pycache__", ".*_cache", ".hypothesis", "staticfiles"))
    dockerfile = copy / "Dockerfile"
    base = base_image(dockerfile, "prod")
    dockerfile.write_text(dockerfile.read_text().replace(base, own["base"]))
    return copy
