"""The production overlay as `kustomize build` renders it, held to what docs/kubernetes.md
promises: rolling updates that keep capacity, probes, unprivileged pods on a
read-only root, resources, secrets as files, and the image CI pushes
{%- if cookiecutter.tasks == "yes" %}; the task
worker: web's image and hardening, a graceful stop, heartbeat probes
{%- endif %}
{%- if cookiecutter.ipfs == "yes" %}; the IPFS node, reachable
by web alone (its RPC API) and the ingress controller alone (its gateway)
{%- endif %}."""

import re
import shutil
import subprocess
from pathlib import Path
{%- if cookiecutter.ipfs == "yes" %}
from urllib.parse import urlsplit
{%- endif %}

import pytest
import yaml

KUBERNETES = Path(__file__).resolve().parents[1]
PROJECT = KUBERNETES.parents[1]
OVERLAY = Path("overlays/production")
SECRETS = {"SECRET_KEY", "DATABASE_URL", "EMAIL_URL"}
BODY_SIZE = "nginx.ingress.kubernetes.io/proxy-body-size"


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    """{(kind, name): object} of the rendered overlay, with the example secrets."""
    root = tmp_path_factory.mktemp("project")
    copy = shutil.copytree(KUBERNETES, root / "deploy" / "kubernetes")
    shutil.copytree(PROJECT / "deploy/scripts", root / "deploy/scripts")  # base names it
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
    """{name: pod spec} of the web Deployment{% if cookiecutter.tasks == "yes" %}, the worker's{% endif %} and the migrate Job: the app's image."""
    return {name: objects[kind, name]["spec"]["template"]["spec"]
            for kind, name in (("Deployment", "web"), {% if cookiecutter.tasks == "yes" %}("Deployment", "worker"), {% endif %}("Job", "migrate"))}


@pytest.fixture(scope="module")
def every_pod(objects):
    """{name: pod spec} of every workload: the app's{% if cookiecutter.ipfs == "yes" %} and the IPFS node's{% endif %}."""
    return {item["metadata"]["name"]: item["spec"]["template"]["spec"]
            for item in objects.values()
            if item["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}}


def containers(pod):
    return pod.get("initContainers", []) + pod["containers"]


def image_user():
    """The numeric user the Dockerfile's prod stage runs as."""
    prod = (PROJECT / "Dockerfile").read_text().split("AS prod")[1]
    return int(re.search(r"^USER (\d+):(\d+)$", prod, re.MULTILINE)[1])


def labels_match(selector, labels):
    """Whether a label selector (matchLabels, and matchExpressions with In) selects `labels`."""
    expressions = selector.get("matchExpressions", [])
    assert {expression["operator"] for expression in expressions} <= {"In"}, expressions
    return selector.get("matchLabels", {}).items() <= labels.items() and all(
        labels.get(expression["key"]) in expression["values"] for expression in expressions)


def container_port(pod, port):
    """A Service's or policy's port (a number or a container port's name) as a number."""
    named = {entry["name"]: entry["containerPort"]
             for container in containers(pod) for entry in container.get("ports", [])}
    return named.get(port, port)


def allowed(objects, target, direction):
    """{(peer, port)} the NetworkPolicies allow for pods with `target`'s labels, in `direction`
    ("ingress" or "egress"); a peer is ("pods", labels) or ("namespace", name) or "anywhere"."""
    labels = target["spec"]["template"]["metadata"]["labels"]
    pod = target["spec"]["template"]["spec"]
    found = set()
    for (kind, _), policy in objects.items():
        if kind != "NetworkPolicy" or not labels_match(policy["spec"]["podSelector"], labels):
            continue
        spec = policy["spec"]
        for rule in spec.get(direction, []):
            peers = rule.get("from" if direction == "ingress" else "to") or ["anywhere"]
            for peer in peers:
                if peer == "anywhere":
                    name = peer
                elif "namespaceSelector" in peer:  # {}: every namespace
                    name = ("namespace", peer["namespaceSelector"].get("matchLabels", {}).get(
                        "kubernetes.io/metadata.name", "every"))
                else:  # {}: every pod
                    name = ("pods", peer["podSelector"].get("matchLabels", {}).get(
                        "app.kubernetes.io/component", "every"))
                for port in rule.get("ports") or [{"port": "any"}]:
                    found.add((name, container_port(pod, port["port"])))
    return found


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


def test_every_pod_runs_as_the_images_user_unprivileged_on_a_read_only_root(every_pod):
    for name, pod in every_pod.items():
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


def test_every_container_has_requests_and_limits(every_pod):
    for pod in every_pod.values():
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
    # Bodies over 1 MiB refused at the ingress (docs/pages.md#limits).
    assert ingress["metadata"]["annotations"][BODY_SIZE] == "1m"
    deny = objects["NetworkPolicy", "default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert objects["Service", "web"]["spec"]["ports"][0]["targetPort"] == "http"


def test_the_app_goes_out_to_dns_the_database_and_mail_only(objects):
    """web{% if cookiecutter.tasks == "yes" %}, the worker{% endif %} and migrate: DNS, PostgreSQL, SMTP submission; nothing but the
    ingress controller comes in, and only to web."""
    workloads = {"web": objects["Deployment", "web"],
{%- if cookiecutter.tasks == "yes" %}
                 "worker": objects["Deployment", "worker"],
{%- endif %}
                 "migrate": {"spec": {"template": objects["Job", "migrate"]["spec"]["template"]}}}
    for name, workload in workloads.items():
        ports = {port for peer, port in allowed(objects, workload, "egress")
                 if peer == "anywhere"}
        assert ports == {53, 5432, 587, 465}, name
        peers = {peer for peer, _ in allowed(objects, workload, "ingress")}
        assert peers == ({("namespace", "ingress-nginx")} if name == "web" else set()), name
{%- if cookiecutter.tasks == "yes" %}


def test_the_worker_is_web_s_image_settings_and_hardening_with_its_own_command(pods):
    web, worker = pods["web"], pods["worker"]
    assert worker["containers"][0]["command"] == ["python", "manage.py", "worker"]
    assert worker["securityContext"] == web["securityContext"]
    assert worker["automountServiceAccountToken"] is False
    assert worker["volumes"] == web["volumes"]  # the secrets, and a sized /tmp for the heartbeat
    assert worker["volumes"][-1]["emptyDir"]["sizeLimit"]
    for container, web_container in zip(containers(worker), containers(web), strict=True):
        for key in ("image", "envFrom", "env", "volumeMounts", "securityContext", "resources"):
            assert container[key] == web_container[key], (container["name"], key)
    assert "ports" not in worker["containers"][0]  # it serves nothing
    # Like web, it waits for the migrate Job: new code never meets an old schema.
    assert worker["initContainers"] == web["initContainers"]


def test_the_worker_stops_gracefully_and_is_probed_by_its_heartbeat(pods):
    worker = pods["worker"]
    # The interface every target keeps (docs/tasks.md): 60 s for the running task to finish.
    assert worker["terminationGracePeriodSeconds"] == 60
    container = worker["containers"][0]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["exec"]["command"] == [
            "python", "-m", "{{ cookiecutter.project_slug }}.worker.health"], probe
    # A hung loop is restarted within a minute or so; a slow start is not mistaken for one.
    liveness = container["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] <= 60
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60


def test_workers_roll_over_and_drain_one_at_a_time(objects):
    worker = objects["Deployment", "worker"]
    assert worker["spec"]["replicas"] >= 2
    assert worker["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    budget = objects["PodDisruptionBudget", "worker"]["spec"]
    assert 1 <= budget["minAvailable"] < worker["spec"]["replicas"]
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert labels_match(budget["selector"], labels)
    assert labels_match(worker["spec"]["selector"], labels)
    web = objects["Deployment", "web"]["spec"]["template"]["metadata"]["labels"]
    assert not labels_match(budget["selector"], web)
    assert not labels_match(objects["PodDisruptionBudget", "web"]["spec"]["selector"], labels)
{%- endif %}
{%- if cookiecutter.ipfs == "yes" %}


@pytest.fixture(scope="module")
def node(objects):
    """The IPFS node's StatefulSet."""
    return objects["StatefulSet", "ipfs"]


def service_for(objects, url, node):
    """The Service a URL's host:port names, and the node's container port it reaches."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    service = objects["Service", host.split(".")[0]]
    labels = node["spec"]["template"]["metadata"]["labels"]
    assert labels_match({"matchLabels": service["spec"]["selector"]}, labels), host
    entry = next(entry for entry in service["spec"]["ports"] if entry["port"] == port)
    return container_port(node["spec"]["template"]["spec"], entry["targetPort"])


def test_one_node_with_its_repo_on_a_volume_claim_and_the_official_image(node):
    spec = node["spec"]
    assert spec["replicas"] == 1
    claim = spec["volumeClaimTemplates"][0]
    container = spec["template"]["spec"]["containers"][0]
    assert {"name": claim["metadata"]["name"], "mountPath": "/data/ipfs"} in \
        container["volumeMounts"]
    assert claim["spec"]["resources"]["requests"]["storage"]
    image, _, tag = container["image"].partition(":")
    assert image == "ipfs/kubo"
    assert tag not in {"", "latest"}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert probe in container, probe


def test_the_node_is_configured_by_the_same_init_script_as_compose(objects, node):
    pod = node["spec"]["template"]["spec"]
    mount = next(mount for mount in pod["containers"][0]["volumeMounts"]
                 if mount["mountPath"] == "/container-init.d")
    volume = next(volume for volume in pod["volumes"] if volume["name"] == mount["name"])
    config = objects["ConfigMap", "ipfs-config"]
    assert volume["configMap"]["name"] == config["metadata"]["name"]
    script = PROJECT / "deploy/scripts/ipfs-config.sh"
    assert config["data"] == {"ipfs-config.sh": script.read_text()}
    assert "/container-init.d" in (PROJECT / "deploy/compose.yaml").read_text()
{%- if cookiecutter.swarm == "yes" %}
    assert "/container-init.d" in (PROJECT / "deploy/swarm.yaml").read_text()
{%- endif %}


def test_every_web_pod_names_a_reachable_node(objects, pods, node):
    settings = objects["ConfigMap", "settings"]
    for container in containers(pods["web"]):
        sources = [source["configMapRef"]["name"] for source in container["envFrom"]]
        assert settings["metadata"]["name"] in sources, container["name"]
        assert "IPFS_API_URL" not in {variable["name"] for variable in container["env"]}
    assert service_for(objects, settings["data"]["IPFS_API_URL"], node) == 5001
    # Readiness asks the database only: a node away must not take web out of rotation.
    assert pods["web"]["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_policies_allow_exactly_web_to_5001_and_the_ingress_controller_to_8080(objects, node):
    web = objects["Deployment", "web"]
    ingress = objects["NetworkPolicy", "web-from-ingress"]["spec"]["ingress"][0]["from"][0]
    controller = ("namespace",
                  ingress["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])
    assert allowed(objects, node, "ingress") == {(("pods", "web"), 5001), (controller, 8080)}
    assert (("pods", "ipfs"), 5001) in allowed(objects, web, "egress")
    migrate = {"spec": {"template": objects["Job", "migrate"]["spec"]["template"]}}
    assert not {peer for peer, _ in allowed(objects, migrate, "egress")} & {("pods", "ipfs")}
    # The node's own way out: DNS and other IPFS nodes, nothing else.
    assert {port for _, port in allowed(objects, node, "egress")} == {53, 4001}


def test_uploads_are_served_from_their_own_origin(objects, node):
    """The gateway on a host of its own (never the site's origin), with TLS, and the site's
    links to uploads pointing there."""
    site = objects["Ingress", "web"]["spec"]
    assert [path["path"] for rule in site["rules"] for path in rule["http"]["paths"]] == ["/"]
    gateway = objects["Ingress", "ipfs-gateway"]["spec"]
    host = gateway["rules"][0]["host"]
    assert host == f"ipfs.{site['rules'][0]['host']}"
    assert gateway["tls"][0]["hosts"] == [host]
    paths = {path["path"]: path for path in gateway["rules"][0]["http"]["paths"]}
    assert list(paths) == ["/ipfs/"]
    assert paths["/ipfs/"]["pathType"] == "Prefix"
    backend = paths["/ipfs/"]["backend"]["service"]
    service = objects["Service", backend["name"]]
    entry = next(entry for entry in service["spec"]["ports"]
                 if entry["name"] == backend["port"]["name"])
    assert container_port(node["spec"]["template"]["spec"], entry["targetPort"]) == 8080
    assert objects["ConfigMap", "settings"]["data"]["IPFS_GATEWAY_URL"] == f"https://{host}"


def test_the_upload_page_alone_takes_bodies_up_to_the_upload_limit(objects):
    uploads = objects["Ingress", "web-uploads"]
    assert [(path["path"], path["pathType"]) for path in
            uploads["spec"]["rules"][0]["http"]["paths"]] == [("/uploads/new/", "Exact")]
    assert uploads["metadata"]["annotations"][BODY_SIZE] == \
        objects["ConfigMap", "settings"]["data"]["IPFS_MAX_UPLOAD_SIZE"]


def test_the_node_marks_what_it_serves_as_sandboxed_and_never_sniffed():
    """No Ingress can set response headers portably: the node's own config does."""
    script = (PROJECT / "deploy/scripts/ipfs-config.sh").read_text()
    assert "Gateway.HTTPHeaders" in script
    assert '"Content-Security-Policy": ["sandbox"]' in script
    assert '"X-Content-Type-Options": ["nosniff"]' in script
{%- endif %}
