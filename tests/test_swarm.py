"""The container tier, Swarm: a generated project's compose.swarm.yaml deployed on a real
single-node Swarm, with zero-downtime updates proven under load.

The engine is put in Swarm mode for this module only (`docker swarm init`) and always leaves it
again, even when a test fails; an engine already in Swarm mode is someone else's, and the test
fails instead of touching it. Other container tests wait meanwhile (test_containers.py's
ENGINE_LOCK: Swarm mode breaks name resolution in compose networks). The images go to the local
registry under a name of this run, and are deleted from it at the end.
"""

import fcntl
import json
import re
import secrets
import signal
import socket
import ssl
import threading
import time
import urllib.request
from contextlib import contextmanager

import pytest
import yaml

from conftest import generate, tool_environment
from test_containers import (ENGINE_LOCK, INTERPOLATION, RUN, docker, eventually, execute,
                             fetch)

pytestmark = pytest.mark.xdist_group("swarm")

REGISTRY = "127.0.0.1:5000"
STACK = f"shipshape-swarm-{RUN}"
SECRETS = ("secret_key", "database_url", "email_url", "postgres_password")
MANIFESTS = ("application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
             "application/vnd.docker.distribution.manifest.list.v2+json, "
             "application/vnd.docker.distribution.manifest.v2+json")
# The load: a few threads on loopback, each a request at a time, a short pause in between.
LOAD_THREADS, LOAD_PAUSE = 4, 0.05
PATHS = ("/healthz", "/admin/login/")


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


class Load:
    """Threads asking Caddy for /healthz and the admin's login page over HTTPS, on loopback;
    every answer that is not a 200 (or no answer) is a failure."""

    def __init__(self, port, tls):
        self.port, self.tls = port, tls
        self.served, self.failures = 0, []
        self.lock, self.stopping = threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(number,), daemon=True)
                        for number in range(LOAD_THREADS)]

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

    @contextmanager
    def running(self):
        for thread in self.threads:
            thread.start()
        try:
            yield self
        finally:
            self.stopping.set()
            for thread in self.threads:
                thread.join(timeout=60)


class Swarm:
    """The stack of one generated project on this engine, in Swarm mode for as long as it lasts."""

    def __init__(self, path, ports):
        self.path, self.ports = path, ports

    def env(self, image):
        return tool_environment() | {"IMAGE": image, "SITE_ADDRESS": "localhost",
                                     "HTTP_PORT": str(self.ports[0]),
                                     "HTTPS_PORT": str(self.ports[1])}

    def deploy(self, image):
        execute(["docker", "stack", "deploy", "--detach=true", "--compose-file",
                 "compose.swarm.yaml", STACK], self.path, self.env(image), timeout=300,
                describe=self.diagnostics)

    def update(self, image, ends, serving, timeout):
        """Deploy `image`: seconds until web's update `ends` so, both tasks healthy on `serving`."""
        self.deploy(image)
        return until(lambda: self.update_state("web") == ends and self.healthy("web", 2, serving),
                     timeout, self.diagnostics)

    def web_image(self):
        return self.service("web")["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]

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
                        for name in ("web", "migrate", "db", "caddy"))
        logs = "".join(f"--- {name}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
                       for name in ("web", "migrate", "db", "caddy")
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
    path = generate(tmp_path_factory.mktemp("swarm"))
    password = secrets.token_urlsafe(24)
    values = {"secret_key": secrets.token_urlsafe(64),
              "database_url": f"postgres://{path.name}:{password}@db:5432/{path.name}",
              "email_url": "smtp://mail.invalid", "postgres_password": password}
    (path / "secrets").mkdir()
    for name in SECRETS:
        (path / "secrets" / name).write_text(values[name] + "\n")
    return path


@pytest.fixture(scope="module")
def images(project):
    """Three releases in the registry: v1, v2 (a one-line change) and a broken one whose health
    check fails (/healthz answers 500)."""
    repository = f"{REGISTRY}/shipshape-swarm-test-{RUN}"
    references = {release: f"{repository}:{release}" for release in ("v1", "v2", "broken")}
    views = project / project.name / "views.py"
    original = views.read_text()
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
        for reference in references.values():
            delete_from_registry(reference)
            docker("rmi", "--force", reference, check=False)


def test_the_swarm_file_reads_only_declared_variables(project, images):
    script = ("import json; from config import env; print(json.dumps({v.name: v.default for v "
              "in env.VARIABLES + env.COMPOSE_VARIABLES}))")
    declared = json.loads(docker("run", "--rm", images["v1"], "python", "-c", script).stdout)
    text = (project / "compose.swarm.yaml").read_text()
    for name, operator, default in INTERPOLATION.findall(text):
        assert name in declared, f"compose.swarm.yaml: {name} is not declared in config/env.py"
        if operator == ":-":
            assert default == declared[name], f"{name} defaults to {default!r}"
    stack = yaml.safe_load(text)
    assert [name for name, service in stack["services"].items() if "build" in service] == []
    assert stack["networks"]["db"]["internal"] is True
    web = stack["services"]["web"]["deploy"]
    assert (web["replicas"], web["update_config"]["order"],
            web["update_config"]["failure_action"]) == (2, "start-first", "rollback")
    for name, service in stack["services"].items():
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        assert service["deploy"]["resources"]["limits"]["memory"], name
        assert not re.search(r"(PASSWORD|SECRET_KEY|DATABASE_URL|EMAIL_URL):",
                             yaml.safe_dump(service.get("environment", {}))), name


def test_swarm_updates_roll_back_and_heal_without_a_failed_request(project, images):
    swarm = Swarm(project, (free_port(), free_port()))
    figures = {}
    with swarm_mode():
        try:
            started = time.monotonic()
            swarm.deploy(images["v1"])
            until(lambda: swarm.healthy("web", 2, images["v1"]) and swarm.healthy("caddy", 1),
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

            with Load(swarm.ports[1], tls).running() as load:
                def scenario(name, action):
                    before = load.figures()
                    seconds = action()
                    after = load.figures()
                    figures[name] = {"seconds": round(seconds, 1),
                                     "served": after[0] - before[0],
                                     "failures": after[1][len(before[1]):]}

                # 1. A new release rolls out one task at a time; every replica ends on it.
                scenario("roll out v2", lambda: swarm.update(images["v2"], "completed",
                                                             images["v2"], 300))
                assert swarm.web_image().startswith(images["v2"] + "@")

                # 2. A web task's container dies: Swarm replaces it, the other one serves.
                def kill_one():
                    victim = next(iter(swarm.containers("web")))
                    docker("kill", victim)
                    return until(lambda: victim not in swarm.containers("web")
                                 and swarm.healthy("web", 2, images["v2"]), 180,
                                 swarm.diagnostics)
                scenario("kill a web task", kill_one)

                # 3. A release whose health check fails: Swarm rolls back by itself.
                scenario("deploy a broken image, rolled back", lambda: swarm.update(
                    images["broken"], "rollback_completed", images["v2"], 420))
                assert swarm.web_image().startswith(images["v2"] + "@")
                time.sleep(2)  # the load goes on after the rollback, too
            figures["load, total"] = {"served": load.figures()[0],
                                      "failures": len(load.figures()[1])}
            print(f"\nswarm figures: {json.dumps(figures, indent=1)}")
            for name, scenario_figures in figures.items():
                if isinstance(scenario_figures, dict) and "served" in scenario_figures:
                    assert scenario_figures["served"] > 0, name
                    assert scenario_figures["failures"] in ([], 0), (name, scenario_figures)
        finally:
            swarm.remove()
            for volume in ("db-data", "caddy-data", "caddy-config"):
                docker("volume", "rm", f"{STACK}_{volume}", check=False)
