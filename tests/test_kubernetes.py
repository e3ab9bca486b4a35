"""deploy/kubernetes of generated projects, checked offline as their CI's `kubernetes` job does:
check.sh (kustomize build, kubernetes-validate, checkov) and the manifests' own tests, with the
IPFS node (default, order_desk) and without (no_ipfs, tasks_no_ipfs: no trace of it), with the
task worker (order_desk, tasks_no_ipfs) and without (default, no_ipfs: no trace of it); order_desk
without the Swarm overlay (swarm=no), which the IPFS node's test otherwise reads too. checkov
comes from this template's locked environment (the project's CI runs the same version with uvx).
Nothing is applied to a cluster."""

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from conftest import TEXT_ANSWERS, generate, tool_environment
from test_containers import execute

pytestmark = pytest.mark.xdist_group("kubernetes")
CHECKOV = Path(sys.executable).parent / "checkov"
OVERLAY = Path("deploy/kubernetes/overlays/production")


@pytest.fixture(scope="module", params=[
    {}, TEXT_ANSWERS[1] | {"tasks": "yes", "swarm": "no"}, TEXT_ANSWERS[2] | {"ipfs": "no"},
    TEXT_ANSWERS[2] | {"ipfs": "no", "tasks": "yes"}],
    ids=["default", "order_desk", "no_ipfs", "tasks_no_ipfs"])
def project(request, tmp_path_factory):
    path = generate(tmp_path_factory.mktemp("kubernetes"), **request.param)
    shutil.copy(path / OVERLAY / "secrets.env.example", path / OVERLAY / "secrets.env")
    return path


def check(path, *command, ok=True):
    result = execute(list(command), path, tool_environment() | {"CHECKOV": str(CHECKOV)},
                     timeout=600, check=ok)
    return result


def test_the_overlay_renders_validates_and_passes_checkov(project):
    result = check(project, "deploy/kubernetes/check.sh")
    assert "Failed checks: 0" in result.stdout, result.stdout
    assert "Passed checks: " in result.stdout


def test_the_manifests_own_tests_pass(project):
    result = check(project, "uv", "run", "--locked", "--group", "kubernetes", "pytest",
                   "deploy/kubernetes/tests")
    assert " passed" in result.stdout and "failed" not in result.stdout, result.stdout


def test_a_writable_root_fails_both_checks(project, tmp_path):
    copy = shutil.copytree(project, tmp_path / project.name, ignore=shutil.ignore_patterns(".venv"))
    web = copy / "deploy/kubernetes/base/web.yaml"
    text = web.read_text()
    assert text.count("readOnlyRootFilesystem: true") == 1
    web.write_text(text.replace("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false"))
    scanned = check(copy, "deploy/kubernetes/check.sh", ok=False)
    assert scanned.returncode != 0 and "CKV_K8S_22" in scanned.stdout, scanned.stdout
    tested = check(copy, "uv", "run", "--locked", "--group", "kubernetes", "pytest",
                   "deploy/kubernetes/tests", ok=False)
    assert tested.returncode != 0
    assert "test_every_pod_runs_as_the_images_user_unprivileged_on_a_read_only_root" in \
        tested.stdout


def test_secrets_env_is_left_out_of_git_and_the_image(project):
    assert (project / ".gitignore").read_text().count(
        "deploy/kubernetes/overlays/*/secrets.env") == 1
    dockerignore = (project / ".dockerignore").read_text().splitlines()
    assert "deploy" in dockerignore  # deploy/.env, deploy/secrets/ and secrets.env with it
    assert os.access(project / "deploy/kubernetes/check.sh", os.X_OK)


def test_without_ipfs_nothing_of_the_node_is_left(project):
    rendered = check(project, "kustomize", "build", str(OVERLAY)).stdout
    has_node = (project / project.name / "uploads").exists()
    assert ("kind: StatefulSet" in rendered) is has_node
    assert ("ipfs" in rendered.lower()) is has_node
    assert (project / "deploy/scripts/kustomization.yaml").exists() is has_node


def test_without_tasks_nothing_of_the_worker_is_left(project):
    rendered = check(project, "kustomize", "build", str(OVERLAY)).stdout
    has_worker = (project / project.name / "worker").exists()
    assert ("name: worker" in rendered) is has_worker
    assert ("worker" in rendered) is has_worker
    assert (project / "deploy/kubernetes/base/worker.yaml").exists() is has_worker


def test_a_worker_without_its_liveness_probe_fails_both_checks(project, tmp_path):
    """The offline checks cover the worker: its probe gone, checkov and the tests say so."""
    if not (project / project.name / "worker").exists():
        return  # no worker (test_without_tasks_nothing_of_the_worker_is_left)
    copy = shutil.copytree(project, tmp_path / project.name, ignore=shutil.ignore_patterns(".venv"))
    worker = copy / "deploy/kubernetes/base/worker.yaml"
    text = worker.read_text()
    probe = re.search(r"^ +livenessProbe:\n(?: {12}.*\n)+", text, re.MULTILINE)[0]
    worker.write_text(text.replace(probe, ""))
    scanned = check(copy, "deploy/kubernetes/check.sh", ok=False)
    assert scanned.returncode != 0 and "CKV_K8S_8" in scanned.stdout, scanned.stdout
    tested = check(copy, "uv", "run", "--locked", "--group", "kubernetes", "pytest",
                   "deploy/kubernetes/tests", ok=False)
    assert tested.returncode != 0
    assert "test_the_worker_stops_gracefully_and_is_probed_by_its_heartbeat" in tested.stdout


@pytest.mark.parametrize(("policy", "opened"), [
    # The gateway's policy opened to every namespace, the RPC API's to every pod.
    ("ipfs-gateway-from-ingress", ("        - namespaceSelector:\n            matchLabels:\n"
                                   "              kubernetes.io/metadata.name: ingress-nginx\n",
                                   "        - namespaceSelector: {}\n")),
    ("ipfs-api-from-web", ("        - podSelector:\n            matchLabels:\n"
                           "              app.kubernetes.io/component: web\n      ports:\n"
                           "        - port: 5001\n---\napiVersion: networking.k8s.io/v1\n"
                           "kind: NetworkPolicy\nmetadata:\n  name: web-to-ipfs-api",
                           "        - podSelector: {}\n      ports:\n"
                           "        - port: 5001\n---\napiVersion: networking.k8s.io/v1\n"
                           "kind: NetworkPolicy\nmetadata:\n  name: web-to-ipfs-api")),
])
def test_a_node_policy_opened_wider_fails_the_manifest_tests(project, tmp_path, policy, opened):
    if not (project / project.name / "uploads").exists():
        assert "ipfs" not in (project / "deploy/kubernetes/base/network-policy.yaml").read_text()
        return
    copy = shutil.copytree(project, tmp_path / project.name, ignore=shutil.ignore_patterns(".venv"))
    policies = copy / "deploy/kubernetes/base/network-policy.yaml"
    text = policies.read_text()
    start = text.index(f"  name: {policy}\n")
    assert opened[0] in text[start:], policy
    policies.write_text(text[:start] + text[start:].replace(opened[0], opened[1], 1))
    tested = check(copy, "uv", "run", "--locked", "--group", "kubernetes", "pytest",
                   "deploy/kubernetes/tests", ok=False)
    assert tested.returncode != 0
    assert "test_policies_allow_exactly_web_to_5001_and_the_ingress_controller_to_8080" in \
        tested.stdout
