"""The container tier, Swarm: a generated project's stack (deploy/compose.yaml with the overlay
deploy/swarm.yaml, merged and deployed by deploy/swarm-deploy.sh) on a real single-node Swarm,
with zero-downtime updates proven under load, and no background task lost while the worker
service rolls over (the project has tasks=yes; the default, tasks=no, is the stack that
test_the_stack_is_the_overlay_merged_and_nothing_of_the_one_host checks without deploying it:
the same services less the worker).

The engine is put in Swarm mode for this module only (`docker swarm init`) and always leaves it
again, even when a test fails; an engine already in Swarm mode is someone else's, and the test
fails instead of touching it. Other container tests wait meanwhile (test_containers.py's
ENGINE_LOCK: Swarm mode breaks name resolution in compose networks). The images go to the local
registry under a name of this run, and are deleted from it at the end.
"""

import collections
import fcntl
import html
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import statistics
import urllib.request
from contextlib import contextmanager

import httpx
import pytest
import yaml

from conftest import generate, tool_environment
from test_containers import (ENGINE_LOCK, INTERPOLATION, RUN, docker, eventually, execute,
                             fetch)

pytestmark = pytest.mark.xdist_group("swarm")

REGISTRY = "127.0.0.1:5000"
STACK = f"shipshape-swarm-{RUN}"
SECRETS = ("secret_key", "database_url", "email_url", "postgres_password",
           "postgres_app_password")
MANIFESTS = ("application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
             "application/vnd.docker.distribution.manifest.list.v2+json, "
             "application/vnd.docker.distribution.manifest.v2+json")
# The load: a few threads on loopback, each a request at a time, a short pause in between.
LOAD_THREADS, LOAD_PAUSE = 4, 0.05
PATHS = ("/healthz", "/admin/login/")
SERVICES = ("web", "worker", "migrate", "db", "caddy", "ipfs")
VOLUMES = ("db-data", "caddy-data", "caddy-config", "ipfs-data")
MEMBER_PASSWORD = secrets.token_urlsafe(16)
GATEWAY = "ipfs.localhost"  # the uploads' origin: ipfs.<SITE_ADDRESS>
CID_LINK = re.compile(r'href="([^"]*/ipfs/(\w+)\?filename=[^"]*)"')
# A task of the test's own, built into its images: a pause of a second, enqueued (a batch per
# `docker exec`) so that PAUSE_WAITING always wait: however slow an exec is on a loaded machine,
# each worker asked to stop during the rollout is running one.
PAUSE_MODULE = "swarm_test_tasks"
PAUSE_SOURCE = '''"""A task of tests/test_swarm.py (Shipshape's): a short pause."""

import time

from django.tasks import task


@task
def pause(seconds):
    time.sleep(seconds)
    return seconds
'''
PAUSE_SECONDS, PAUSE_WAITING = 1.0, 10
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.MULTILINE)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def build_and_push(path, reference):
    execute(["docker", "build", "--quiet", "--target", "prod", "--tag", reference, "."], path,
            tool_environment(), timeout=1200)
    docker("push", "--quiet", reference, timeout=600)


def delete_from_registry(reference):
    """Best effort: the registry may not allow deleting manifests."""
    repository, tag = reference.split("/", 1)[1].rsplit(":", 1)
    url = f"http://{REGISTRY}/v2/{repository}/manifests/"
    try:
        head = urllib.request.Request(url + tag, method="HEAD", headers={"Accept": MANIFESTS})
        with urllib.request.urlopen(head, timeout=10) as response:
            digest = response.headers["Docker-Content-Digest"]
        with urllib.request.urlopen(urllib.request.Request(url + digest, method="DELETE"),
                                    timeout=10):
            pass
    except OSError:
        pass


class Background:
    """Threads that call `run(number)` beside a test for as long as `with self.running():` lasts,
    each until `self.stopping` is set."""

    join_timeout = 60

    def __init__(self, threads=1):
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(number,), daemon=True)
                        for number in range(threads)]

    @contextmanager
    def running(self):
        for thread in self.threads:
            thread.start()
        try:
            yield self
        finally:
            self.stopping.set()
            for thread in self.threads:
                thread.join(timeout=self.join_timeout)


class Load(Background):
    """Threads asking Caddy for /healthz and the admin's login page over HTTPS, on loopback;
    every answer that is not a 200 (or no answer) is a failure."""

    def __init__(self, port, tls):
        self.port, self.tls = port, tls
        self.served, self.failures = 0, []
        self.lock = threading.Lock()
        super().__init__(threads=LOAD_THREADS)

    def run(self, number):
        requests = 0
        while not self.stopping.is_set():
            path = PATHS[(number + requests) % len(PATHS)]
            requests += 1
            try:
                status = fetch(self.port, path, tls=self.tls, timeout=20)[0]
                failure = None if status == 200 else f"{path}: {status}"
            except OSError as error:
                failure = f"{path}: {error!r}"
            with self.lock:
                if failure:
                    self.failures.append(failure)
                else:
                    self.served += 1
            time.sleep(LOAD_PAUSE)

    def figures(self):
        with self.lock:
            return self.served, list(self.failures)


class Uploads(Background):
    """A signed-in member, through Caddy: uploads a new file, then fetches it by its CID from
    /ipfs/, over and over (or, paused, fetches the files kept so far); each answer timed, and any
    that is not the expected one is a failure."""

    join_timeout = 120

    def __init__(self, port, tls):
        base = f"https://localhost:{port}"
        self.client = httpx.Client(base_url=base, verify=tls, timeout=60,
                                   headers={"Referer": f"{base}/"})
        # The uploads' own origin, https://ipfs.localhost, through the same published port (the
        # host's resolver may not know *.localhost).
        self.gateway = httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=tls, timeout=60,
                                    headers={"Host": f"{GATEWAY}:{port}"})
        self.kept = []  # (link, bytes)
        self.samples = []  # (monotonic time, "upload" or "fetch", seconds)
        self.failures = []
        self.lock, self.uploading = threading.Lock(), threading.Event()
        self.uploading.set()
        super().__init__()

    def sign_in(self):
        self.client.get("/accounts/login/").raise_for_status()
        response = self.client.post("/accounts/login/", data={
            "username": "member", "password": MEMBER_PASSWORD,
            "csrfmiddlewaretoken": self.client.cookies["csrftoken"]})
        assert response.status_code == 302, response.text

    def timed(self, kind, call):
        started = time.monotonic()
        result = call()
        with self.lock:
            self.samples.append((started, kind, time.monotonic() - started))
        return result

    def upload(self):
        data = secrets.token_bytes(40_000)
        response = self.timed("upload", lambda: self.client.post(
            "/uploads/new/", data={"csrfmiddlewaretoken": self.client.cookies["csrftoken"]},
            files={"file": ("load.bin", data, "application/octet-stream")}))
        if response.status_code != 302:
            raise AssertionError(f"upload: {response.status_code} {response.text[-300:]}")
        page = self.client.get(response.headers["location"])
        link = CID_LINK.search(page.text)
        if page.status_code != 200 or not link:
            raise AssertionError(f"upload page: {page.status_code}")
        self.kept.append((html.unescape(link[1]), data))

    def fetch(self, link, data):
        if not link.startswith(f"https://{GATEWAY}/ipfs/"):
            raise AssertionError(f"{link}: not on the uploads' own origin")
        path = link.removeprefix(f"https://{GATEWAY}")
        response = self.timed("fetch", lambda: self.gateway.get(
            path, extensions={"sni_hostname": GATEWAY}))
        if response.status_code != 200 or response.content != data:
            raise AssertionError(f"{link}: {response.status_code}, {len(response.content)} bytes")

    def step(self):
        try:
            if self.uploading.is_set():
                self.upload()
                self.fetch(*self.kept[-1])
            else:
                for kept in list(self.kept):
                    self.fetch(*kept)
        except (httpx.HTTPError, AssertionError) as error:
            with self.lock:
                self.failures.append(repr(error))

    def run(self, _number):
        while not self.stopping.is_set():
            self.step()
            time.sleep(0.2)

    def figures(self, since, until):
        with self.lock:
            samples = [(kind, seconds) for started, kind, seconds in self.samples
                       if since <= started < until]
        figures = {}
        for kind in ("upload", "fetch"):
            times = [seconds for found, seconds in samples if found == kind]
            figures[kind] = ({"count": len(times), "median, ms": round(statistics.median(times) * 1000),
                              "max, ms": round(max(times) * 1000)} if times else {"count": 0})
        return figures


class Tasks(Background):
    """A stream of pause tasks enqueued through web's containers (a batch per `docker exec` into
    whichever is up; one that goes away meanwhile is a retry in another, not a failure), their
    IDs kept, and what became of them."""

    join_timeout = 180

    def __init__(self, swarm):
        self.swarm = swarm
        self.path = f"{swarm.path.name}.{PAUSE_MODULE}.pause"
        self.ids, self.retries = [], 0
        super().__init__()

    def django(self, code, check=True):
        """`code` run by `manage.py shell` in one of web's running containers."""
        for container in self.swarm.containers("web"):
            result = docker("exec", container, "python", "manage.py", "shell", "-v", "0", "-c",
                            code, check=False, timeout=120)
            if result.returncode == 0 or not check:
                return result
            self.retries += 1
        return None

    def run(self, _number):
        code = (f"from {self.path.rsplit('.', 1)[0]} import pause\n"
                "from django_tasks_db.models import DBTaskResult\n"
                f"waiting = DBTaskResult.objects.filter(task_path={self.path!r}, "
                "status='READY').count()\n"
                f"for _ in range({PAUSE_WAITING} - waiting): "
                f"print(pause.enqueue({PAUSE_SECONDS}).id, flush=True)")
        while not self.stopping.is_set():
            result = self.django(code, check=False)
            if result is not None:  # the IDs printed before a container went away count too
                self.ids += UUID.findall(result.stdout)
                self.retries += result.returncode != 0
            time.sleep(0.5)

    def results(self):
        """{task ID: (status, worker IDs, started, finished)} of every pause task in the
        database; the times in seconds since the epoch, or None."""
        code = ("import json; from django_tasks_db.models import DBTaskResult; "
                "epoch = lambda at: at and at.timestamp(); print(json.dumps("
                "{str(row.id): [row.status, row.worker_ids, epoch(row.started_at), "
                "epoch(row.finished_at)] for row in "
                f"DBTaskResult.objects.filter(task_path={self.path!r})}}))")
        result = self.django(code)
        assert result is not None, "no web container answered"
        return {key: tuple(value) for key, value in json.loads(result.stdout).items()}


class Swarm:
    """The stack of one generated project on this engine, in Swarm mode for as long as it lasts."""

    def __init__(self, path, ports):
        self.path, self.ports = path, ports

    def env(self, image):
        return tool_environment() | {"IMAGE": image, "SITE_ADDRESS": "localhost",
                                     "HTTP_PORT": str(self.ports[0]),
                                     "HTTPS_PORT": str(self.ports[1]),
                                     "IPFS_SWARM_PORT": str(self.ports[2])}

    def deploy(self, image):
        result = execute(["deploy/swarm-deploy.sh", "--detach=true", STACK], self.path,
                         self.env(image), timeout=300, describe=self.diagnostics)
        # Nothing of the one host's file reaches Swarm only to be dropped (restart, build, ...).
        assert "Ignoring" not in result.stderr, result.stderr

    def update(self, image, ends, serving, timeout, services=("web",)):
        """Deploy `image`: seconds until each service's update `ends` so, both of its tasks
        healthy on `serving`."""
        self.deploy(image)
        return until(lambda: all(self.update_state(name) == ends
                                 and self.healthy(name, 2, serving) for name in services),
                     timeout, self.diagnostics)

    def web_image(self, service="web"):
        return self.service(service)["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]

    def service(self, name):
        return json.loads(docker("service", "inspect", f"{STACK}_{name}").stdout)[0]

    def update_state(self, name):
        return (self.service(name).get("UpdateStatus") or {}).get("State")

    def containers(self, service):
        """{container ID: (image, health)} of the service's running containers."""
        ids = docker("ps", "--quiet", "--filter",
                     f"label=com.docker.swarm.service.name={STACK}_{service}").stdout.split()
        found = {}
        for found_id in ids:
            state = json.loads(docker("inspect", found_id, check=False).stdout or "[{}]")[0]
            if state:
                found[found_id] = (state["Config"]["Image"],
                                   (state["State"].get("Health") or {}).get("Status"))
        return found

    def healthy(self, service, replicas, image=None):
        found = self.containers(service)
        return len(found) == replicas and all(
            health == "healthy" and (image is None or found_image.startswith(image + "@"))
            for found_image, health in found.values())

    def diagnostics(self):
        services = docker("service", "ls", check=False).stdout
        tasks = "".join(docker("service", "ps", "--no-trunc", f"{STACK}_{name}", check=False).stdout
                        for name in SERVICES)
        logs = "".join(f"--- {name}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
                       for name in SERVICES
                       for result in [docker("service", "logs", "--tail", "30", f"{STACK}_{name}",
                                             check=False)])
        return f"{services}\n{tasks}\n{logs}"

    def remove(self):
        docker("stack", "rm", STACK, check=False)
        eventually(lambda: not docker("ps", "--all", "--quiet", "--filter",
                                      f"label=com.docker.stack.namespace={STACK}").stdout.strip(),
                   timeout=120)


@contextmanager
def engine_to_itself(timeout=1800):
    """The engine lock held exclusively: no compose stack of the other workers has containers
    until it is given back (test_containers.py: ENGINE_LOCK says why)."""

    def expired(signal_number, frame):
        pytest.fail(f"compose stacks still held {ENGINE_LOCK} after {timeout} s")

    with ENGINE_LOCK.open("a") as lock:
        previous = signal.signal(signal.SIGALRM, expired)
        signal.alarm(timeout)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)  # waits for the stacks that are up to go down
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        yield


@contextmanager
def swarm_mode():
    """This engine as a single-node swarm, which it always leaves again; no compose stack of
    this suite runs meanwhile."""
    state = docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
    if state != "inactive":
        pytest.fail(f"the Docker engine is in Swarm mode already ({state}): this test creates "
                    "its own swarm and leaves it afterwards; it will not leave someone else's")
    with engine_to_itself():
        docker("swarm", "init", "--advertise-addr", "127.0.0.1")
        try:
            # The IPFS node's placement (docs/swarm.md: the node that keeps its repo is labelled).
            node = docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()
            docker("node", "update", "--label-add", "ipfs=true", node)
            yield
        finally:
            docker("swarm", "leave", "--force", check=False)


def until(condition, timeout, describe):
    """Seconds until condition() held; fails with describe() after timeout seconds."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"gave up after {timeout} s\n{describe()}")
        time.sleep(1)
    return time.monotonic() - start


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    path = generate(tmp_path_factory.mktemp("swarm"), tasks="yes")
    password = secrets.token_urlsafe(24)
    values = {"secret_key": secrets.token_urlsafe(64),
              "database_url": f"postgres://{path.name}_app:{password}@db:5432/{path.name}",
              "email_url": "smtp://mail.invalid", "postgres_password": secrets.token_urlsafe(24),
              "postgres_app_password": password}
    (path / "deploy" / "secrets").mkdir()
    for name in SECRETS:
        (path / "deploy" / "secrets" / name).write_text(values[name] + "\n")
    return path


@pytest.fixture(scope="module")
def images(project):
    """Three releases in the registry: v1, v2 (a one-line change) and a broken one whose health
    check fails (/healthz answers 500); each with the test's pause task."""
    repository = f"{REGISTRY}/shipshape-swarm-test-{RUN}"
    references = {release: f"{repository}:{release}" for release in ("v1", "v2", "broken")}
    views = project / project.name / "views.py"
    original = views.read_text()
    pause = project / project.name / f"{PAUSE_MODULE}.py"
    pause.write_text(PAUSE_SOURCE)
    try:
        build_and_push(project, references["v1"])
        views.write_text(original + "\nRELEASE = 2\n")
        build_and_push(project, references["v2"])
        healthy = 'return HttpResponse("ok\\n", content_type="text/plain")\n\n\n@never_cache'
        assert healthy in original
        views.write_text(original.replace(healthy, healthy.replace(
            '"text/plain")', '"text/plain", status=500)'), 1))
        build_and_push(project, references["broken"])
        yield references
    finally:
        views.write_text(original)
        pause.unlink()
        for reference in references.values():
            delete_from_registry(reference)
            docker("rmi", "--force", reference, check=False)


def stack_input(path, env, tmp_path):
    """What deploy/swarm-deploy.sh hands `docker stack deploy`: (its arguments, its stdin), caught
    by a `docker` in front of the real one that stands in for that one subcommand."""
    shim = tmp_path / "bin" / "docker"
    shim.parent.mkdir(parents=True)
    shim.write_text(f'#!/bin/sh\nif [ "$1" = stack ]; then echo "$@" >{tmp_path}/arguments; '
                    f'exec cat >{tmp_path}/stack.yaml; fi\nexec {shutil.which("docker")} "$@"\n')
    shim.chmod(0o755)
    execute(["deploy/swarm-deploy.sh", "--detach=true", STACK], path,
            env | {"PATH": f"{shim.parent}:{env['PATH']}"})
    return (tmp_path / "arguments").read_text().split(), (tmp_path / "stack.yaml").read_text()


def stack_config(path, text, env):
    """The stack `docker stack deploy` would create from `text`: interpolated from `env` alone."""
    (path / "stack.yaml").write_text(text)
    result = execute(["docker", "stack", "config", "--compose-file", "stack.yaml"], path, env,
                     check=False)
    return result if result.returncode else yaml.safe_load(result.stdout)


def compose_environments(env):
    """This Compose, and the current one .ci/run installs beside it (as users have)."""
    found = [env]
    if os.environ.get("SHIPSHAPE_CURRENT_COMPOSE_CONFIG"):
        found.append(env | {"DOCKER_CONFIG": os.environ["SHIPSHAPE_CURRENT_COMPOSE_CONFIG"]})
    return found


@pytest.mark.parametrize(("ipfs", "tasks"), [("yes", "no"), ("no", "yes")])
def test_the_stack_is_the_overlay_merged_and_nothing_of_the_one_host(tmp_path, ipfs, tasks):
    """deploy/swarm-deploy.sh: the same stack with every Compose; the one host's backup service,
    builds, start order, restart policy, .env and tmpfs keys (which Swarm ignores) gone; files
    named by absolute paths; ${...} left to `docker stack deploy`, which reads the shell's
    environment and never deploy/.env."""
    path = generate(tmp_path / "project", ipfs=ipfs, tasks=tasks)
    (path / "deploy/.env").write_text("IMAGE=from-dotenv\nSITE_ADDRESS=dotenv.invalid\n"
                                      "POSTGRES_PASSWORD=dotenv-password\n")
    inputs = []
    for number, env in enumerate(compose_environments(tool_environment())):
        version = execute(["docker", "compose", "version", "--short"], path, env).stdout
        # !reset and !override: Compose 2.24.4 or later.
        assert tuple(map(int, re.match(r"v?(\d+)\.(\d+)\.(\d+)", version).groups())) >= (
            2, 24, 4), version
        arguments, text = stack_input(path, env, tmp_path / str(number))
        assert arguments == ["stack", "deploy", "--compose-file", "-", "--detach=true", STACK]
        inputs.append(text)
    assert len(set(inputs)) == 1, "the Composes merge differently"
    text = inputs[0]
    assert "dotenv" not in text and "POSTGRES_PASSWORD:" not in text
    refused = stack_config(tmp_path, text, tool_environment())
    assert "required variable IMAGE is missing a value" in refused.stderr
    env = tool_environment() | {"IMAGE": "registry.invalid/app:v1", "SITE_ADDRESS": "site.invalid"}
    stack = stack_config(tmp_path, text, env)
    assert "dotenv" not in yaml.safe_dump(stack)
    services = stack["services"]
    assert set(services) == {"db", "migrate", "web", "caddy"} | (
        {"ipfs"} if ipfs == "yes" else set()) | ({"worker"} if tasks == "yes" else set())
    assert services["web"]["image"] == services["migrate"]["image"] == "registry.invalid/app:v1"
    if tasks == "yes":
        worker, web = services["worker"], services["web"]
        for key in ("image", "environment", "secrets", "volumes", "read_only", "cap_drop"):
            assert worker[key] == web[key], key
        assert worker["command"][-1].endswith("; exec python manage.py worker")
        assert worker["healthcheck"]["test"][-2:] == ["-m", f"{path.name}.worker.health"]
        assert worker["stop_grace_period"] in ("60s", "1m0s")
        assert "ports" not in worker
    assert services["web"]["environment"]["ALLOWED_HOSTS"] == "site.invalid"
    for name, service in services.items():
        assert not {"build", "depends_on", "env_file", "restart", "security_opt", "tmpfs"} & set(
            service), name
        assert not re.search(r"(PASSWORD|SECRET_KEY|DATABASE_URL|EMAIL_URL):",
                             yaml.safe_dump(service.get("environment", {}))), name
        tmpfs = [volume for volume in service["volumes"] if volume["type"] == "tmpfs"]
        assert tmpfs and all(volume["tmpfs"]["size"] for volume in tmpfs), name
        assert all(volume["type"] in ("tmpfs", "volume") for volume in service["volumes"]), name
    for section in ("configs", "secrets"):
        for name, entry in stack[section].items():
            assert entry["file"].startswith(f"{path}/deploy/"), (section, name)
    assert (ipfs == "yes") == ("ipfs" in stack["networks"])
    assert (ipfs == "yes") == ("ipfs" in (path / "deploy/swarm.yaml").read_text().lower())
    assert (tasks == "yes") == ("worker" in (path / "deploy/swarm.yaml").read_text().lower())


def test_the_swarm_file_reads_only_declared_variables(project, images, tmp_path):
    script = ("import json; from config import env, env_example; print(json.dumps({v.name: "
              "v.default for v in env.VARIABLES + env_example.COMPOSE_VARIABLES}))")
    declared = json.loads(docker("run", "--rm", images["v1"], "python", "-c", script).stdout)
    text = stack_input(project, tool_environment(), tmp_path)[1]
    for name, operator, default in INTERPOLATION.findall(text):
        assert name in declared, f"the stack: {name} is not declared (config/env*.py)"
        if operator == ":-":
            assert default == declared[name], f"{name} defaults to {default!r}"
    stack = stack_config(tmp_path, text, tool_environment() | {"IMAGE": images["v1"]})
    assert stack["networks"]["db"]["internal"] is True
    for name, network in stack["networks"].items():
        assert network["driver_opts"] == {"encrypted": ""}, name
    # The IPFS node: one task on the labelled node, its RPC API and gateway published nowhere
    # (web reaches the API on the internal network, Caddy the gateway), the same init script as
    # deploy/compose.yaml's, its own health check.
    ipfs = stack["services"]["ipfs"]
    assert ipfs["deploy"]["replicas"] == 1
    assert ipfs["deploy"]["placement"]["constraints"] == ["node.labels.ipfs == true"]
    assert {port["target"] for port in ipfs["ports"]} == {4001}
    assert "ipfs" in ipfs["networks"] and stack["networks"]["ipfs"]["internal"] is True
    assert "ipfs" in stack["services"]["web"]["networks"]
    assert stack["services"]["web"]["environment"]["IPFS_API_URL"] == "http://ipfs:5001"
    assert {"type": "volume", "source": "ipfs-data", "target": "/data/ipfs",
            "volume": {}} in ipfs["volumes"]
    config = ipfs["configs"][0]
    assert config["target"] == "/container-init.d/ipfs-config.sh"
    assert stack["configs"][config["source"]]["file"] == str(
        project / "deploy/scripts/ipfs-config.sh")
    for name in ("web", "worker"):
        policy = stack["services"][name]["deploy"]
        assert (policy["replicas"], policy["update_config"]["order"],
                policy["update_config"]["failure_action"]) == (2, "start-first", "rollback"), name
    # The worker: the database, and a way out (to the mail server); nothing published.
    assert set(stack["services"]["worker"]["networks"]) == {"db", "edge"}
    for name, service in stack["services"].items():
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        assert service["deploy"]["resources"]["limits"]["memory"], name


@contextmanager
def stopped_workers():
    """{worker's hostname: (when it was sent SIGTERM, its exit code)}, filled in on leaving, of
    the worker containers Swarm stopped meanwhile. The events are followed as they come: the
    engine keeps only its last 256 for `--since`, and health checks and execs make many."""
    events = subprocess.Popen(
        ["docker", "events", "--filter", "type=container", "--filter", "event=kill",
         "--filter", f"label=com.docker.swarm.service.name={STACK}_worker",
         "--format", "{{json .}}"], stdout=subprocess.PIPE, text=True, env=tool_environment())
    stopped = {}
    try:
        yield stopped
    finally:
        time.sleep(1)  # the last events through the pipe
        events.terminate()
        lines = events.communicate(timeout=30)[0].splitlines()
    for event in map(json.loads, lines):
        if event["Actor"]["Attributes"].get("signal") != "15":
            continue
        state = json.loads(docker("inspect", event["Actor"]["ID"]).stdout)[0]
        stopped.setdefault(state["Config"]["Hostname"], (event["timeNano"] / 1e9, state["State"][
            "ExitCode"] if state["State"]["Status"] == "exited" else state["State"]["Status"]))


def tasks_figures(tasks, swarm, stopped):
    """Waits for every task of the stream to finish; asserts each ran once and succeeded, and
    that the old workers, stopped, finished the task they were running and exited 0."""
    results = {}

    def finished():
        results.update(tasks.results())
        return all(results.get(key, ("",))[0] in ("SUCCESSFUL", "FAILED") for key in tasks.ids)

    drained = until(finished, 180, swarm.diagnostics)
    statuses = collections.Counter(results[key][0] for key in tasks.ids)
    workers = {worker for key in tasks.ids for worker in results[key][1]}
    figures = {"enqueued": len(tasks.ids), "statuses": dict(statuses), "workers": len(workers),
               "retried execs": tasks.retries, "drained after, s": round(drained, 1)}
    assert len(tasks.ids) >= 20, figures
    assert statuses == {"SUCCESSFUL": len(tasks.ids)}, figures
    # Claimed once each: no worker stopped mid-task and left it to be recovered and run again.
    assert all(len(results[key][1]) == 1 for key in tasks.ids), figures
    # Run by the old workers and by the new ones: the stream spanned the rollover.
    assert len(workers) >= 3, figures
    # The two old workers were stopped (SIGTERM) mid-task: each finished that task, then exited
    # 0, not killed at the end of its grace period.
    figures["stopped workers' exit codes"] = sorted(str(code) for _, code in stopped.values())
    finished_after = [key for key in tasks.ids for host, (signalled, _) in stopped.items()
                      if results[key][1][0].startswith(f"{host}-")
                      and results[key][2] < signalled < results[key][3]]
    figures["tasks finished after their worker's SIGTERM"] = len(finished_after)
    assert figures["stopped workers' exit codes"] == ["0", "0"], figures
    assert len(finished_after) == 2, figures
    return figures


def create_member(container):
    docker("exec", container, "python", "manage.py", "shell", "-v", "0", "-c",
           "from django.contrib.auth import get_user_model; "
           f"get_user_model().objects.create_user('member', password={MEMBER_PASSWORD!r})")


def test_swarm_updates_roll_back_and_heal_without_a_failed_request(project, images):
    swarm = Swarm(project, (free_port(), free_port(), free_port()))
    figures = {}
    with swarm_mode():
        try:
            started = time.monotonic()
            swarm.deploy(images["v1"])
            until(lambda: swarm.healthy("web", 2, images["v1"]) and swarm.healthy("caddy", 1)
                  and swarm.healthy("ipfs", 1) and swarm.healthy("worker", 2, images["v1"]),
                  300, swarm.diagnostics)
            figures["first deployment, s"] = round(time.monotonic() - started)
            caddy = next(iter(swarm.containers("caddy")))
            root = eventually(lambda: docker(
                "exec", caddy, "cat", "/data/caddy/pki/authorities/local/root.crt",
                check=False).stdout, timeout=60)
            tls = ssl.create_default_context(cadata=root)
            assert eventually(lambda: fetch(swarm.ports[1], "/healthz", tls=tls)[0] == 200,
                              timeout=60)
            assert fetch(swarm.ports[1], "/admin/login/", tls=tls)[0] == 200
            migrations = docker("service", "ps", "--format", "{{.CurrentState}}",
                                f"{STACK}_migrate").stdout
            assert migrations.startswith("Complete"), migrations
            # Encrypted overlays (IPsec) work on this engine: the stack runs on them.
            for network in ("edge", "db", "ipfs"):
                options = json.loads(docker("network", "inspect", f"{STACK}_{network}").stdout)[0]
                assert "encrypted" in (options.get("Options") or {}), network
            # The node's configuration came from the init script.
            node = next(iter(swarm.containers("ipfs")))
            assert docker("exec", node, "ipfs", "config", "Gateway.NoFetch").stdout.strip() == \
                "true"
            web = next(iter(swarm.containers("web")))
            # The app's own role, which the db's image made from the init script: not a superuser.
            assert docker("exec", web, "python", "manage.py", "shell", "-v", "0", "-c",
                          "from django.db import connection; cursor = connection.cursor(); "
                          "cursor.execute('SELECT current_user, rolsuper FROM pg_roles WHERE "
                          "rolname = current_user'); print(*cursor.fetchone())"
                          ).stdout.strip() == f"{project.name}_app False"
            create_member(web)
            uploads = Uploads(swarm.ports[1], tls)
            uploads.sign_in()
            uploads.step()
            assert uploads.failures == [] and len(uploads.kept) == 1, uploads.failures

            with Load(swarm.ports[1], tls).running() as load, uploads.running():
                def scenario(name, action, uploading=True):
                    if not uploading:
                        uploads.uploading.clear()
                    before, started = load.figures(), time.monotonic()
                    failed_before = len(uploads.failures)
                    seconds = action()
                    after = load.figures()
                    figures[name] = {"seconds": round(seconds, 1),
                                     "served": after[0] - before[0],
                                     "failures": after[1][len(before[1]):]
                                     + uploads.failures[failed_before:],
                                     **uploads.figures(started, time.monotonic())}
                    uploads.uploading.set()

                # 1. A new release rolls out one task at a time; every replica of web and of the
                # worker ends on it. Tasks enqueued all along: none lost, none run twice.
                tasks = Tasks(swarm)
                with stopped_workers() as stopped, tasks.running():
                    time.sleep(3)  # a few before the rollout, so the old workers have some
                    scenario("roll out v2", lambda: swarm.update(
                        images["v2"], "completed", images["v2"], 300, ("web", "worker")))
                    time.sleep(3)
                for name in ("web", "worker"):
                    assert swarm.web_image(name).startswith(images["v2"] + "@"), name
                figures["tasks through the rollout"] = tasks_figures(tasks, swarm, stopped)

                # 2. A web task's container dies: Swarm replaces it, the other one serves.
                def kill_one():
                    victim = next(iter(swarm.containers("web")))
                    docker("kill", victim)
                    return until(lambda: victim not in swarm.containers("web")
                                 and swarm.healthy("web", 2, images["v2"]), 180,
                                 swarm.diagnostics)
                # Uploads paused while a task is killed (a request it was serving is lost with
                # it); the files uploaded so far are fetched meanwhile, and uploads go on after.
                scenario("kill a web task", kill_one, uploading=False)
                time.sleep(3)  # uploads again, after the killed task

                # 3. A release whose health check fails: Swarm rolls back by itself.
                scenario("deploy a broken image, rolled back", lambda: swarm.update(
                    images["broken"], "rollback_completed", images["v2"], 420), uploading=False)
                assert swarm.web_image().startswith(images["v2"] + "@")
                time.sleep(2)  # the load goes on after the rollback, too
            figures["load, total"] = {"served": load.figures()[0],
                                      "failures": len(load.figures()[1])}
            figures["uploads, total"] = {"files": len(uploads.kept),
                                         "failures": uploads.failures}
            # Every file uploaded is still served, by its CID, after all of it.
            for link, data in uploads.kept:
                uploads.fetch(link, data)
            print(f"\nswarm figures: {json.dumps(figures, indent=1)}")
            for name, scenario_figures in figures.items():
                if isinstance(scenario_figures, dict) and "served" in scenario_figures:
                    assert scenario_figures["served"] > 0, name
                    assert scenario_figures["failures"] in ([], 0), (name, scenario_figures)
            assert uploads.failures == []
            assert figures["roll out v2"]["upload"]["count"] > 0
            assert figures["kill a web task"]["fetch"]["count"] > 0
        finally:
            swarm.remove()
            for volume in VOLUMES:
                docker("volume", "rm", f"{STACK}_{volume}", check=False)
