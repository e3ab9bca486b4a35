"""The production overlay as `kustomize build` renders it, held to what README's "On
Kubernetes" promises: rolling updates that keep capacity, probes, unprivileged pods on a
read-only root, resources, secrets as files, and the image CI pushes."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

KUBERNETES = Path(__file__).resolve().parents[1]
PROJECT = KUBERNETES.parents[1]
OVERLAY = Path("overlays/production")
SECRETS = {"SECRET_KEY", "DATABASE_URL", "EMAIL_URL"}


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    """{(kind, name): object} of the rendered overlay, with the example secrets."""
    copy = shutil.copytree(KUBERNETES, tmp_path_factory.mktemp("kubernetes") / "kubernetes")
    shutil.copy(copy / OVERLAY / "secrets.env.example", copy / OVERLAY / "secrets.env")
    rendered = subprocess.run(["kustomize", "build", str(copy / OVERLAY)], capture_output=True,
                              text=True, check=True).stdout
    return {(item["kind"], generated_name(item)): item for item in yaml.safe_load_all(rendered)}


def generated_name(item):
    """The name as written, without the hash suffix kustomize gives what it generates."""
    name = item["metadata"]["name"]
    return name.rsplit("-", 1)[0] if item["kind"] in {"ConfigMap", "Secret"} else name


@pytest.fixture(scope="module")
def pods(objects):
    """{name: pod spec} of the web Deployment and the migrate Job."""
    return {name: objects[kind, name]["spec"]["template"]["spec"]
            for kind, name in (("Deployment", "web"), ("Job", "migrate"))}


def containers(pod):
    return pod.get("initContainers", []) + pod["containers"]


def image_user():
    """The numeric user the Dockerfile's prod stage runs as."""
    prod = (PROJECT / "Dockerfile").read_text().split("AS prod")[1]
    return int(re.search(r"^USER (\d+):(\d+)$", prod, re.MULTILINE)[1])


def test_web_rolls_over_one_pod_at_a_time_without_losing_capacity(objects):
    web = objects["Deployment", "web"]["spec"]
    assert web["replicas"] >= 2
    assert web["strategy"] == {"type": "RollingUpdate",
                               "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    assert objects["HorizontalPodAutoscaler", "web"]["spec"]["minReplicas"] >= 2
    assert objects["PodDisruptionBudget", "web"]["spec"]["minAvailable"] >= 1


def test_probes_ask_healthz_and_readyz_as_the_site(objects, pods):
    web = pods["web"]["containers"][0]
    paths = {probe: web[probe]["httpGet"]["path"]
             for probe in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert paths == {"startupProbe": "/healthz", "livenessProbe": "/healthz",
                     "readinessProbe": "/readyz"}
    allowed = objects["ConfigMap", "settings"]["data"]["ALLOWED_HOSTS"].split(",")
    for probe in paths:
        assert web[probe]["httpGet"]["httpHeaders"] == [{"name": "Host", "value": allowed[0]}]


def test_every_pod_runs_as_the_images_user_unprivileged_on_a_read_only_root(pods):
    for name, pod in pods.items():
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == image_user(), name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        tmp = next(volume for volume in pod["volumes"] if volume["name"] == "tmp")
        assert "emptyDir" in tmp, name
        for container in containers(pod):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, container["name"]
            assert context["allowPrivilegeEscalation"] is False, container["name"]
            assert context["capabilities"] == {"drop": ["ALL"]}, container["name"]
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_every_container_has_requests_and_limits(pods):
    for pod in pods.values():
        for container in containers(pod):
            for kind in ("requests", "limits"):
                assert set(container["resources"][kind]) == {"cpu", "memory"}, container["name"]


def test_the_image_is_named_as_ci_pushes_it(pods):
    workflow = (PROJECT / ".github/workflows/ci.yml").read_text()
    # docker/metadata-action names the image after the repository and tags it sha-<short commit>.
    assert re.search(r"^ +images: ghcr\.io/\$\{\{ github\.repository \}\}$", workflow, re.M)
    assert re.search(r"^ +type=sha$", workflow, re.M)
    images = {container["image"] for pod in pods.values() for container in containers(pod)}
    assert len(images) == 1
    assert re.fullmatch(r"ghcr\.io/[a-z0-9._-]+/[a-z0-9._-]+:sha-[0-9a-f]{7,40}", images.pop())


def test_secrets_are_mounted_files_never_environment_values(objects, pods):
    secret = objects["Secret", "secrets"]
    assert set(secret["data"]) == SECRETS
    for pod in pods.values():
        volume = next(volume for volume in pod["volumes"] if "secret" in volume)
        assert volume["secret"]["secretName"] == secret["metadata"]["name"]
        for container in containers(pod):
            mount = next(mount for mount in container["volumeMounts"]
                         if mount["name"] == volume["name"])
            env = {variable["name"]: variable.get("value") for variable in container["env"]}
            assert env == {f"{name}_FILE": f"{mount['mountPath']}/{name}" for name in SECRETS}
    assert f"deploy/kubernetes/{OVERLAY.parent.name}/*/secrets.env" in \
        (PROJECT / ".gitignore").read_text()


def test_migrations_run_once_per_release_and_web_waits_for_them(pods):
    assert pods["migrate"]["containers"][0]["command"][-2:] == ["migrate", "--noinput"]
    assert pods["migrate"]["restartPolicy"] == "Never"
    wait = pods["web"]["initContainers"][0]["command"]
    assert "migrate --check" in wait[-1]


def test_https_ingress_and_a_network_that_denies_by_default(objects):
    ingress = objects["Ingress", "web"]
    assert ingress["spec"]["tls"][0]["hosts"] == [ingress["spec"]["rules"][0]["host"]]
    assert "cert-manager.io/cluster-issuer" in ingress["metadata"]["annotations"]
    deny = objects["NetworkPolicy", "default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert objects["Service", "web"]["spec"]["ports"][0]["targetPort"] == "http"
