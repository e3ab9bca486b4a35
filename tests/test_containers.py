"""The container tier: build a generated project's images, run its development and production
stacks on a real Docker engine, and hold them to what the README promises.

Each project is generated twice (a development copy and a production copy) and built once per
target; every test that starts a stack tears it down again (containers, networks, volumes), even
when it fails, and the images go when the project's tests are done. Compose project names are
unique per run and every published port is picked by Docker, on 127.0.0.1 only, so parallel
workers never collide.
"""

import fcntl
import http.client
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import tomllib
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect, sync_playwright

from conftest import TEXT_ANSWERS, generate, tool_environment

# The default project and one that differs in every answer; all tests of one project run on one
# worker (xdist_group), so its images are built once.
PROJECTS = [
    pytest.param({}, id="default", marks=pytest.mark.xdist_group("containers-default")),
    pytest.param(TEXT_ANSWERS[1] | {"license": "Proprietary", "notebooks": "no"}, id="order_desk",
                 marks=pytest.mark.xdist_group("containers-order_desk")),
]
RUN = f"{os.getpid()}-{secrets.token_hex(3)}"
# The "host user" of the development stack: the caller, as on a developer's machine or GitHub's
# runner (uid 1001). Run as root, the copy is given to 1234 instead: not root, and not the
# image's default 1000 either, so the mapping is still proven.
HOST_UID, HOST_GID = (os.getuid(), os.getgid()) if os.getuid() != 0 else (1234, 1234)
PROD_UID = 10001
UP_TIMEOUT = 300
# The Linux capabilities each production service gets back after `cap_drop: [ALL]`, with their
# bit numbers (linux/capability.h): the entrypoint of postgres chowns its data and drops to its
# user; the official caddy binary carries the file capability cap_net_bind_service.
CAPABILITY_BITS = {"CHOWN": 0, "DAC_READ_SEARCH": 2, "FOWNER": 3, "SETGID": 6, "SETUID": 7,
                   "NET_BIND_SERVICE": 10}
PROD_CAPABILITIES = {"db": {"CHOWN", "DAC_READ_SEARCH", "FOWNER", "SETGID", "SETUID"},
                     "migrate": set(), "web": set(), "caddy": {"NET_BIND_SERVICE"},
                     "backup": set(), "ipfs": set()}
# A compose network's containers no longer resolve each other's names once the engine has left
# Swarm mode ("failed to resolve host 'db'": moby/moby#45144), and on Engine 29 while it is in
# it (#51491). So a stack holds this lock shared from its first `up` or `run` to its `down`, and
# test_swarm.py holds it exclusively from `swarm init` to `swarm leave`.
ENGINE_LOCK = Path(tempfile.gettempdir()) / "shipshape-docker-engine.lock"
CREATE_CONTAINERS = {"up", "run", "create"}
# The admin's stylesheet as pages name it in production: with the hash of its content.
# What compose prints before each line of `logs`, even into a pipe: ESC [2K, erase the line.
ERASE_LINE = re.compile(r"^\x1b\[[0-9;]*K")
HASHED_STYLESHEET = re.compile(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"')


def read_env_file(path):
    pairs = (line.split("=", 1) for line in path.read_text().splitlines()
             if line.strip() and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def execute(command, cwd, env, timeout=900, check=True, describe=None):
    """Run a command; on failure, fail the test with its output (and `describe()`'s, if given)."""
    result = subprocess.run(command, cwd=cwd, env=env, text=True, capture_output=True,
                            timeout=timeout, check=False)
    if check and result.returncode != 0:
        extra = f"\n--- diagnostics\n{describe()}" if describe else ""
        pytest.fail(f"{' '.join(map(str, command))} exited {result.returncode}\n--- stdout\n"
                    f"{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}{extra}")
    return result


def docker(*arguments, timeout=300, check=True):
    return execute(["docker", *arguments], cwd=None, env=tool_environment(), timeout=timeout,
                   check=check)


class Stack:
    """One compose project (unique name) of a generated project: dev or prod."""

    def __init__(self, path, name, files, env):
        self.path, self.name, self.files, self.env = path, name, files, env
        self.engine_lock = None  # held (shared) while the stack may have containers

    def command(self, *arguments):
        """The `docker compose` command line; one that may create containers takes the engine
        lock first (down() gives it back)."""
        if CREATE_CONTAINERS & set(arguments) and self.engine_lock is None:
            self.engine_lock = ENGINE_LOCK.open("a")
            fcntl.flock(self.engine_lock, fcntl.LOCK_SH)
        files = [option for file in self.files for option in ("-f", file)]
        return ["docker", "compose", "-p", self.name, *files, *arguments]

    def compose(self, *arguments, timeout=600, check=True):
        return execute(self.command(*arguments), self.path, self.env, timeout, check,
                       describe=self.diagnostics)

    def diagnostics(self):
        ps = execute(self.command("ps", "--all"), self.path, self.env, 60, check=False)
        logs = execute(self.command("logs", "--no-color", "--tail", "60"), self.path, self.env,
                       60, check=False)
        return f"{ps.stdout}\n{logs.stdout[-8000:]}{logs.stderr[-2000:]}"

    def up(self):
        self.compose("up", "--detach", "--wait", "--wait-timeout", str(UP_TIMEOUT),
                     timeout=UP_TIMEOUT + 60)

    def down(self, volumes=True, profiles=(), images=False):
        """Containers and networks gone (volumes too, unless volumes=False; the stack's own
        images too with images=True), whatever the compose command says; the lock goes back."""
        try:
            self.compose(*(option for profile in profiles for option in ("--profile", profile)),
                         "down", "--remove-orphans", *(["--volumes"] if volumes else []),
                         *(["--rmi", "local"] if images else []), timeout=180, check=False)
        finally:
            if self.engine_lock is not None:
                self.engine_lock.close()  # and with it the lock
                self.engine_lock = None

    def container(self, service):
        ids = self.compose("ps", "--all", "--quiet", service).stdout.split()
        assert len(ids) == 1, f"{service}: expected one container, found {ids}"
        return ids[0]

    def inspect(self, service):
        return json.loads(docker("inspect", self.container(service)).stdout)[0]

    def port(self, service, port):
        address = self.compose("port", service, str(port)).stdout.strip()
        return int(address.rsplit(":", 1)[1])

    def exec(self, service, *command, **options):
        return self.compose("exec", "-T", service, *command, **options)

    def image(self, service):
        return f"{self.name}-{service}"


def with_ipfs(stack):
    return (stack.path / stack.path.name / "uploads").exists()


@contextmanager
def running(stack):
    """The stack, up and healthy; afterwards down with its volumes, whatever happened."""
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


class Project:
    def __init__(self, answers, root):
        self.answers = answers
        # Development: the .env as generated; the copy belongs to a non-root "host user".
        dev_path = generate(root / "dev", **answers)
        self.slug = dev_path.name
        # Production: its own copy, with the .env an operator would write on the server; the
        # operator's too (the backup service writes to its backups/ as HOST_UID).
        prod_path = generate(root / "prod", **answers)
        if os.getuid() == 0:
            for path in [dev_path, *dev_path.rglob("*"), prod_path, *prod_path.rglob("*")]:
                os.chown(path, HOST_UID, HOST_GID)
        self.prod_values = {
            "SECRET_KEY": secrets.token_urlsafe(64),
            "ALLOWED_HOSTS": "localhost",
            "EMAIL_URL": "smtp://mail.invalid",  # nothing is mailed in these tests
            "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
            "POSTGRES_APP_PASSWORD": secrets.token_urlsafe(24),
            "SITE_ADDRESS": "localhost",
        }
        (prod_path / "deploy" / ".env").write_text("".join(f"{name}={value}\n"
                                                for name, value in self.prod_values.items()))
        name = f"shipshape-{self.slug.replace('_', '-')}-{RUN}"
        # Every published port picked by Docker, on 127.0.0.1 only (dev's are already): Docker
        # picks a port for IPv4 and one for IPv6 separately, and they can differ
        # (moby/moby#42442); `compose port` names the IPv4 one, and a client of
        # https://localhost that tries ::1 first (Chromium does) would reach another stack there.
        env = tool_environment() | {
            "HOST_UID": str(HOST_UID), "HOST_GID": str(HOST_GID), "WEB_PORT": "0",
            "IPFS_GATEWAY_PORT": "0",
        } | dict.fromkeys(("HTTP_PORT", "HTTPS_PORT", "IPFS_SWARM_PORT"), "127.0.0.1:")
        self.dev = Stack(dev_path, f"{name}-dev", ["compose.yaml"], env)
        self.prod = Stack(prod_path, f"{name}-prod", ["deploy/compose.yaml"], env)
        self.dev_values = read_env_file(dev_path / ".env")

    def build(self):
        self.dev.compose("build", timeout=1200)
        self.prod.compose("build", timeout=1200)

    def remove_images(self):
        for stack in (self.dev, self.prod):
            stack.down(profiles=["notebook"], images=True)


@pytest.fixture(scope="module", params=PROJECTS)
def project(request, tmp_path_factory):
    generated = Project(request.param, tmp_path_factory.mktemp("containers"))
    try:
        generated.build()
        yield generated
    finally:
        generated.remove_images()


@pytest.fixture
def dev(project):
    with running(project.dev) as stack:
        yield stack


@pytest.fixture
def prod(project):
    with running(project.prod) as stack:
        yield stack


# --- HTTP against 127.0.0.1 only ---

class LocalHTTPS(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1, naming `localhost` in the TLS handshake (SNI) as a browser would."""

    def connect(self):
        raw = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname="localhost")


def fetch(port, path, tls=None, timeout=15, headers=None):
    """(status, headers, body) of GET path at 127.0.0.1:port, with Host: localhost."""
    if tls is None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    else:
        connection = LocalHTTPS("localhost", port, context=tls, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": "localhost", **(headers or {})})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, \
            response.read().decode(errors="replace")
    finally:
        connection.close()


def eventually(attempt, timeout=60, interval=0.5):
    """attempt()'s first truthy result within timeout seconds, else its last error or result."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            result = attempt()
            if result:
                return result
            last = result
        except (OSError, http.client.HTTPException, ssl.SSLError) as error:
            last = error
        time.sleep(interval)
    pytest.fail(f"gave up after {timeout} s: {last!r}")


def caddy_trust(stack):
    """An SSL context that trusts only the root of Caddy's internal CA, read from its volume."""
    root = eventually(lambda: stack.exec("caddy", "cat", "/data/caddy/pki/authorities/local/"
                                         "root.crt", check=False).stdout, timeout=30)
    assert "BEGIN CERTIFICATE" in root
    return ssl.create_default_context(cadata=root)


def health(stack):
    """{service: (state, health, exit code)}."""
    output = stack.compose("ps", "--all", "--format", "json").stdout.strip()
    services = json.loads(output) if output.startswith("[") else \
        [json.loads(line) for line in output.splitlines()]
    return {service["Service"]: (service["State"], service.get("Health", ""), service["ExitCode"])
            for service in services}


# --- images ---

def test_both_targets_build(project):
    dev_image = json.loads(docker("image", "inspect", project.dev.image("web")).stdout)[0]
    prod_image = json.loads(docker("image", "inspect", project.prod.image("web")).stdout)[0]
    assert dev_image["Config"]["User"] == f"{HOST_UID}:{HOST_GID}"
    assert prod_image["Config"]["User"] == f"{PROD_UID}:{PROD_UID}"
    assert prod_image["Config"]["Healthcheck"]["Test"][0] == "CMD"
    assert prod_image["Config"]["StopSignal"] == "SIGTERM"
    assert prod_image["Config"]["Cmd"][0] == "gunicorn"  # exec form: gunicorn is PID 1
    # The build's placeholder settings (BUILD_SETTINGS, an ARG) are in neither environment.
    assert not [variable for image in (dev_image, prod_image) for variable in image["Config"]["Env"]
                if variable.startswith(("BUILD_SETTINGS=", "SECRET_KEY=", "DATABASE_URL="))]
    labels = prod_image["Config"]["Labels"]
    for label in ("title", "source", "revision", "created", "base.name"):
        assert labels.get(f"org.opencontainers.image.{label}"), label
    assert labels["org.opencontainers.image.title"] == project.slug
    assert labels["org.opencontainers.image.base.name"].startswith("python:3.13-slim")
    # Only the runtime: no uv, no compilers, no uv cache; bytecode and static files present.
    found = docker("run", "--rm", "--entrypoint", "sh", project.prod.image("web"), "-c",
                   "for tool in uv gcc cc make; do command -v $tool; done; "
                   "ls -d /root/.cache/uv /app/tests 2>/dev/null; "
                   "ls /app/staticfiles/admin/css/base.*.css.br; "
                   "find /app/config -name '*.pyc' | head -1", check=False).stdout.split()
    assert [line for line in found if not line.startswith(("/app/staticfiles", "/app/config"))] \
        == [], found
    assert any(line.endswith(".pyc") for line in found), found
    assert [line for line in found if re.fullmatch(
        r"/app/staticfiles/admin/css/base\.[0-9a-f]{12}\.css\.br", line)], found
    # The dev image has the floor of the uv that pyproject.toml requires (CI's setup-uv installs
    # it too), not the newest one it admits.
    required = tomllib.loads((project.dev.path / "pyproject.toml").read_text())["tool"]["uv"][
        "required-version"]
    version = docker("run", "--rm", project.dev.image("web"), "uv", "--version").stdout.split()
    assert required == f">={version[1]}", version


def test_the_debug_toolbar_is_in_the_dev_image_only(project):
    probe = "import importlib.util; print(importlib.util.find_spec('debug_toolbar') is not None)"
    found = {target: docker("run", "--rm", "--entrypoint", "python", stack.image("web"), "-c",
                            probe).stdout.strip()
             for target, stack in (("dev", project.dev), ("prod", project.prod))}
    assert found == {"dev": "True", "prod": "False"}


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_a_lock_that_drifts_from_pyproject_fails_the_build(project, target, tmp_path):
    drifted = shutil.copytree(project.prod.path, tmp_path / project.slug)
    pyproject = drifted / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text.replace('dependencies = [\n', 'dependencies = [\n    "six>=1.16",\n',
                                      1))
    assert pyproject.read_text() != text
    # --no-cache-filter build: the dependency step runs again (and prints again) even when the
    # other target's test has just failed it.
    result = execute(["docker", "build", "--progress", "plain", "--no-cache-filter", "build",
                      "--target", target, "."], cwd=drifted, env=tool_environment(), check=False)
    assert result.returncode != 0
    # What the user reads: uv's own reason, and the failed step named on the error line, whatever
    # the engine's wording around it (BuildKit 0.8: `failed to solve: ... [build 4/4] RUN ...:
    # exit code: 2`; current: `failed to solve: process "/bin/sh -c ..." did not complete ...`).
    assert "The lockfile at `uv.lock` needs to be updated" in result.stderr, result.stderr[-3000:]
    failed = [line for line in result.stderr.splitlines() if "failed to solve" in line]
    assert failed and "uv sync --locked --no-default-groups --no-install-project" in failed[-1], \
        result.stderr[-3000:]


def test_no_secret_from_env_files_is_in_any_image(project, tmp_path):
    secrets_ = {project.prod_values["SECRET_KEY"], project.prod_values["POSTGRES_PASSWORD"],
                project.dev_values["SECRET_KEY"], project.dev_values["POSTGRES_PASSWORD"]}
    assert all(len(secret) >= 24 for secret in secrets_)
    for image in (project.dev.image("web"), project.prod.image("web")):
        metadata = docker("history", "--no-trunc", image).stdout + \
            docker("image", "inspect", image).stdout
        assert not [secret for secret in secrets_ if secret in metadata], image
        # Every layer's files and the image configuration, as `docker save` writes them.
        archive = tmp_path / "image.tar"
        docker("save", "--output", str(archive), image, timeout=600)
        needles = [secret.encode() for secret in secrets_]
        overlap = max(map(len, needles))
        with archive.open("rb") as stream:
            tail = b""
            while chunk := stream.read(1 << 22):
                window = tail + chunk
                assert not [needle for needle in needles if needle in window], image
                tail = window[-overlap:]
        archive.unlink()


# --- development ---

def test_dev_stack_comes_up_healthy_and_serves(dev):
    assert health(dev) == {"db": ("running", "healthy", 0), "migrate": ("exited", "", 0),
                           "web": ("running", "healthy", 0)} | (
        {"ipfs": ("running", "healthy", 0)} if with_ipfs(dev) else {})
    port = dev.port("web", 8000)
    assert fetch(port, "/healthz")[0] == 200
    assert fetch(port, "/readyz")[0] == 200
    status, _, body = fetch(port, "/admin/login/")
    assert status == 200
    assert 'name="username"' in body and 'name="password"' in body


def test_dev_server_reloads_a_view_edited_on_the_host(dev):
    port = dev.port("web", 8000)
    started = dev.inspect("web")["State"]["StartedAt"]
    views = dev.path / dev.path.name / "views.py"
    original = views.read_text()
    marker = f"edited on the host {secrets.token_hex(4)}"
    try:
        views.write_text(original + (
            "\n\nfrom django.http import HttpResponse as _EditedResponse  # noqa: E402\n\n\n"
            "def healthz(request):  # noqa: F811\n"
            f"    return _EditedResponse({marker!r})\n"))
        eventually(lambda: fetch(port, "/healthz")[2] == marker, timeout=60)
    finally:
        views.write_text(original)
    state = dev.inspect("web")
    assert (state["State"]["StartedAt"], state["RestartCount"]) == (started, 0)


def compose_that_watches(stack):
    """The environment in which `docker compose` is one that rebuilds on changes under a bind
    mount (Compose 2.30 or later, as current Docker has): this one, or the current Compose that
    .ci/run installs beside the engine's 2.26 ($SHIPSHAPE_CURRENT_COMPOSE_CONFIG)."""
    environments = [stack.env]
    if os.environ.get("SHIPSHAPE_CURRENT_COMPOSE_CONFIG"):
        environments.append(stack.env | {"DOCKER_CONFIG":
                                         os.environ["SHIPSHAPE_CURRENT_COMPOSE_CONFIG"]})
    for env in environments:
        version = execute(["docker", "compose", "version", "--short"], stack.path, env).stdout
        if tuple(map(int, re.match(r"v?(\d+)\.(\d+)", version).groups())) >= (2, 30):
            return env
    pytest.fail("no Compose 2.30 or later: run .ci/run, which installs one")


def test_compose_watch_rebuilds_web_when_the_dependencies_change(dev, tmp_path):
    """`docker compose watch`: a change to pyproject.toml (here, a comment) rebuilds the image and
    replaces the web container, which comes back healthy. The code itself needs no rule: it is
    bind-mounted, and the dev server reloads it."""
    before = dev.inspect("web")

    def replacement():  # the new web container, once there is exactly one
        ids = dev.compose("ps", "--quiet", "web", check=False).stdout.split()
        return len(ids) == 1 and ids[0] != before["Id"] and dev.inspect("web")

    log = tmp_path / "watch.log"
    with log.open("w") as output:
        watcher = subprocess.Popen(dev.command("watch", "--no-up", "web"), cwd=dev.path,
                                   env=compose_that_watches(dev), stdout=output,
                                   stderr=subprocess.STDOUT)
    pyproject = dev.path / "pyproject.toml"
    original = pyproject.read_text()
    try:
        eventually(lambda: "Watch enabled" in log.read_text(errors="replace"), timeout=60)
        pyproject.write_text(original + f"# touched by a test {secrets.token_hex(4)}\n")
        replaced = eventually(replacement, timeout=240, interval=2)
        assert replaced["Image"] != before["Image"], log.read_text()  # a new image, not a restart
        eventually(lambda: health(dev)["web"] == ("running", "healthy", 0), timeout=120)
        assert fetch(dev.port("web", 8000), "/healthz")[0] == 200
    finally:
        pyproject.write_text(original)
        watcher.terminate()
        watcher.wait(timeout=60)


def test_files_written_through_the_bind_mount_belong_to_the_host_user(dev):
    assert dev.exec("web", "id", "-u").stdout.strip() == str(HOST_UID)
    dev.exec("web", "sh", "-c", "echo hello > /app/written-in-the-container.txt")
    written = dev.path / "written-in-the-container.txt"
    try:
        assert (written.stat().st_uid, written.stat().st_gid) == (HOST_UID, HOST_GID)
    finally:
        written.unlink()


def test_the_projects_tests_pass_in_the_dev_container(project):
    # With notebooks, in the notebook image (dev plus Jupyter), which the notebook's test needs.
    notebooks = project.answers.get("notebooks", "yes") == "yes"
    service = "notebook" if notebooks else "web"
    try:
        result = project.dev.compose("run", "--rm", service, "pytest", timeout=1200)
        summary = result.stdout.strip().splitlines()[-1]
        assert re.search(r"\d+ passed", summary), summary
        assert not re.search(r"failed|skipped|error|xfail", summary), summary
        owners = {(path.stat().st_uid, path.stat().st_gid)
                  for path in (project.dev.path / ".pytest_cache").rglob("*")}
        assert owners == {(HOST_UID, HOST_GID)}
        if notebooks:
            # `web pytest` too, as a developer types it: every other test runs and passes; the
            # notebook's (no Jupyter in the web image) is one skip that names its command.
            result = project.dev.compose("run", "--rm", "web", "pytest", timeout=1200)
            summary = result.stdout.strip().splitlines()[-1]
            assert re.search(r"\d+ passed, 1 skipped in", summary), summary
            assert not re.search(r"failed|error|xfail", summary), summary
            (skip,) = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
            assert skip.startswith("SKIPPED [1] notebooks/test_notebooks.py") and skip.endswith(
                ": docker compose run --rm notebook pytest notebooks/test_notebooks.py"), skip
    finally:
        project.dev.down()


# --- production ---

def test_prod_stack_is_healthy_and_serves_https_and_redirects_http(prod):
    assert health(prod) == {
        "db": ("running", "healthy", 0), "migrate": ("exited", "", 0),
        "web": ("running", "healthy", 0), "caddy": ("running", "healthy", 0),
        "backup": ("running", "healthy", 0)} | (
        {"ipfs": ("running", "healthy", 0)} if with_ipfs(prod) else {})
    https, http_ = prod.port("caddy", 443), prod.port("caddy", 80)
    trust = caddy_trust(prod)
    status, headers, body = eventually(lambda: fetch(https, "/healthz", tls=trust))
    assert (status, body) == (200, "ok\n")
    assert headers["strict-transport-security"].startswith("max-age=")
    assert fetch(https, "/readyz", tls=trust)[0] == 200
    status, _, body = fetch(https, "/admin/login/", tls=trust)
    assert status == 200 and 'name="username"' in body
    # Static files, from WhiteNoise through Caddy, by the names the page gives them.
    stylesheet = HASHED_STYLESHEET.search(body)
    status, headers, _ = fetch(https, stylesheet[1], tls=trust)
    assert status == 200 and headers["content-type"].startswith("text/css")
    status, headers, _ = fetch(http_, "/admin/login/")
    assert status in (301, 308)
    assert headers["location"].startswith("https://localhost")
    assert "not formatted" not in prod.compose("logs", "caddy").stdout


def test_static_files_have_hashed_names_and_are_cached_for_ever(prod):
    https, trust = prod.port("caddy", 443), caddy_trust(prod)
    _, _, page = eventually(lambda: fetch(https, "/admin/login/", tls=trust))
    stylesheet = HASHED_STYLESHEET.search(page)
    assert stylesheet, page[:3000]
    for encoding in ("br", "gzip"):
        status, headers, _ = fetch(https, stylesheet[1], tls=trust,
                                   headers={"Accept-Encoding": encoding})
        assert (status, headers.get("content-encoding")) == (200, encoding), headers
        assert "immutable" in headers["cache-control"], headers
        max_age = int(re.search(r"max-age=(\d+)", headers["cache-control"])[1])
        assert max_age >= 365 * 24 * 3600, headers


def chromium():
    """The installed Chromium (Debian's package, as .ci/run installs it) or Chrome (GitHub's
    runners have it): Playwright drives it instead of downloading a browser of its own."""
    found = [path for name in ("chromium", "chromium-browser", "google-chrome")
             if (path := shutil.which(name))]
    assert found, "no Chromium: install Debian's `chromium` package (.ci/run does)"
    return found[0]


# Chromium drops every connection, and with it every request in flight, when the host gains or
# loses an address: as Docker adds and removes a bridge for each network other tests' stacks
# create. The error says nothing about the site.
NETWORK_CHANGED = "ERR_NETWORK_CHANGED"


@contextmanager
def browser_page():
    """A Chromium page (Playwright driving the installed browser) and the console errors it
    logs; a Content-Security-Policy violation is one."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium())
        # Caddy's certificate for localhost comes from its own CA; TLS is checked elsewhere.
        page = browser.new_page(ignore_https_errors=True, viewport={"width": 1024, "height": 768})
        errors = []
        page.on("console", lambda message: message.type == "error"
                and NETWORK_CHANGED not in message.text
                and errors.append(f"{page.url}: {message.text}"))
        try:
            yield page, errors
        finally:
            browser.close()


def navigate(page, steps, attempts=10):
    """steps(), which lead the page elsewhere; again from the start, after a growing pause (the
    changes come in bursts while other tests start or stop stacks), when the host's network
    changed under the navigation or under any request of the page it loaded (a stylesheet cut
    that way is a sheet without rules). A site that fails for good fails every try.
    """
    cut = []  # this try's requests that a network change dropped

    def on_failure(request):
        if NETWORK_CHANGED in (request.failure or ""):
            cut.append(request.url)

    page.on("requestfailed", on_failure)
    try:
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                time.sleep(attempt - 1)
            cut.clear()
            try:
                result = steps()
                page.wait_for_load_state()
            except PlaywrightError as error:
                # Said in several ways: by the error, by another network error on a connection
                # the change cut, or by the error page or the late answer of the dropped try
                # that interrupted this one's navigation.
                dropped = any(sign in str(error) for sign in (
                    NETWORK_CHANGED, "net::ERR_", "chrome-error://",
                    "interrupted by another navigation"))
                if dropped and attempt < attempts:
                    continue
                raise
            if attempt == attempts or not (cut or page.url.startswith("chrome-error://")):
                return result
    finally:
        page.remove_listener("requestfailed", on_failure)


def sign_in(page, url, username, password):
    """Signed out, a page that needs a user sends you to the sign-in form, and back to it after."""

    def through_the_form():
        page.goto(url)
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        submit(page, "Sign in")

    navigate(page, through_the_form)
    expect(page).to_have_url(url)


def submit(page, button):
    """Click a form's button and wait until the page has left the form's URL."""
    form = page.url
    page.get_by_role("button", name=button).click()
    page.wait_for_url(lambda url: url != form)


def assert_page_passes(page, screenshots=None):
    """axe-core finds no accessibility problem, and the page fits a phone's width; with
    screenshots=(directory, name), desktop and phone screenshots are saved there."""
    violations = Axe().run(page)
    assert violations.violations_count == 0, violations.generate_report()
    page.set_viewport_size({"width": 375, "height": 740})
    assert page.evaluate("document.documentElement.scrollWidth") <= 375, page.url
    if screenshots:
        page.screenshot(path=screenshots[0] / f"{screenshots[1]}-phone.png", full_page=True)
    page.set_viewport_size({"width": 1024, "height": 768})
    if screenshots:
        page.screenshot(path=screenshots[0] / f"{screenshots[1]}.png", full_page=True)


def test_the_pages_pass_in_a_real_browser(prod, tmp_path):
    """Chromium through Caddy, as a visitor: every page of the site renders with its stylesheet,
    fits a phone's width, logs no error (a Content-Security-Policy violation is one), and axe-core
    finds no accessibility problem; signing in and writing a note work; the admin keeps working
    under the same policy. Screenshots go to $SHIPSHAPE_SCREENSHOTS when it is set."""
    password = secrets.token_urlsafe(16)
    prod.compose("exec", "-T", "--env", f"DJANGO_SUPERUSER_PASSWORD={password}", "web", "python",
                 "manage.py", "createsuperuser", "--noinput", "--username", "ada",
                 "--email", "ada@example.com")
    base = f"https://localhost:{prod.port('caddy', 443)}"
    eventually(lambda: fetch(prod.port("caddy", 443), "/healthz", tls=caddy_trust(prod))[0] == 200)
    shots = Path(os.environ.get("SHIPSHAPE_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with browser_page() as (page, problems):

        def visit(path, name):
            response = navigate(page, lambda: page.goto(base + path))
            assert response.status == 200, path
            assert page.evaluate("document.styleSheets[0].cssRules.length") > 10, path
            assert_page_passes(page, (shots, name))

        for path, name in [("/", "home"), ("/notes/", "notes"), ("/accounts/login/", "sign-in"),
                           ("/accounts/password_reset/", "password-reset")]:
            visit(path, name)

        sign_in(page, f"{base}/notes/new/", "ada", password)
        visit("/notes/new/", "note-form")

        def write_note():
            page.goto(f"{base}/notes/new/")
            page.get_by_label("Title").fill("Written in a browser")
            submit(page, "Save the note")

        navigate(page, write_note)
        expect(page.get_by_role("heading", name="Written in a browser")).to_be_visible()
        visit(page.url.removeprefix(base), "note")
        visit("/accounts/password_change/", "password-change")
        assert problems == [], problems
        for path in ("/admin/", "/admin/notes/note/"):
            assert navigate(page, lambda path=path: page.goto(base + path)).status == 200, path
        page.screenshot(path=shots / "admin.png")
        assert [problem for problem in problems if "Content Security Policy" in problem] == []


def test_caddy_and_web_log_each_request_as_json_with_its_id(prod):
    https, trust = prod.port("caddy", 443), caddy_trust(prod)
    path = f"/healthz?logged={secrets.token_hex(4)}"
    status, headers, _ = eventually(lambda: fetch(https, path, tls=trust))
    request_id = headers["x-request-id"]
    assert status == 200 and re.fullmatch(r"[0-9a-f-]{36}", request_id)
    lines = eventually(lambda: [line for line in prod.compose(
        "logs", "--no-log-prefix", "caddy").stdout.splitlines() if path in line], timeout=15)
    (entry,) = [json.loads(line[line.index("{"):]) for line in lines]  # after compose's ANSI
    assert entry["status"] == 200 and entry["request"]["remote_ip"]
    assert entry["request_id"] == request_id
    # gunicorn keeps no access log of its own.
    assert path not in prod.compose("logs", "web").stdout
    # A page Django answers (404): web's lines are JSON, and its request line and its
    # django.request warning carry the ID that Caddy returned, and Caddy's log has it too.
    missing = f"/no-such-page-{secrets.token_hex(4)}/"
    status, headers, _ = fetch(https, missing, tls=trust)
    assert status == 404

    def web_lines():
        printed = prod.compose("logs", "--no-log-prefix", "--no-color", "web").stdout
        # Each line JSON, or this fails: once compose's erase-line code (ESC [2K) is off.
        return [json.loads(ERASE_LINE.sub("", line)) for line in printed.splitlines()]

    logged = eventually(lambda: [line for line in web_lines() if line.get("path") == missing],
                        timeout=15)
    assert {(line["logger"], line["level"]) for line in logged} == {
        ("config.logs", "INFO"), ("django.request", "WARNING")}
    assert {line["request_id"] for line in logged} == {headers["x-request-id"]}
    (request_line,) = [line for line in logged if line["logger"] == "config.logs"]
    assert (request_line["method"], request_line["status"]) == ("GET", 404)
    caddy = [json.loads(line[line.index("{"):]) for line in prod.compose(
        "logs", "--no-log-prefix", "caddy").stdout.splitlines() if missing in line]
    assert [entry["request_id"] for entry in caddy] == [headers["x-request-id"]]


def test_the_health_probe_checks_healthz_without_starting_python(prod):
    probe = prod.inspect("web")["Config"]["Healthcheck"]["Test"]
    assert probe[0] == "CMD" and "python" not in probe[1], probe
    assert prod.exec("web", *probe[1:], check=False).returncode == 0
    # The same image with nothing listening on port 8000: the probe fails.
    idle = docker("run", "--rm", "--entrypoint", probe[1], prod.image("web"), *probe[2:],
                  check=False)
    assert idle.returncode != 0


def test_the_caddyfile_is_formatted_and_valid(project):
    """Caddy warns at every start about a Caddyfile that `caddy fmt` would change, and refuses
    an invalid one: both asked of the caddy image that production runs."""
    mount = f"{project.prod.path / "deploy" / "Caddyfile"}:/etc/caddy/Caddyfile:ro"
    docker("run", "--rm", "--volume", mount, "caddy:2",
           "caddy", "fmt", "--diff", "/etc/caddy/Caddyfile")
    docker("run", "--rm", "--volume", mount, "--env", "SITE_ADDRESS=localhost", "caddy:2",
           "caddy", "validate", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile")


def test_prod_web_runs_unprivileged_on_a_read_only_root(prod):
    assert prod.exec("web", "id", "-u").stdout.strip() == str(PROD_UID)
    refused = prod.exec("web", "sh", "-c", "touch /app/x || touch /venv/x || touch /x",
                        check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    assert prod.exec("web", "sh", "-c", "touch /tmp/x && echo writable").stdout.strip() \
        == "writable"
    for service, capabilities in PROD_CAPABILITIES.items():
        host = prod.inspect(service)["HostConfig"]
        assert host["ReadonlyRootfs"] is True, service
        assert host["CapDrop"] == ["ALL"], service
        assert {name.removeprefix("CAP_") for name in host["CapAdd"] or []} == capabilities, \
            service
        assert "no-new-privileges:true" in host["SecurityOpt"], service
        assert host["Memory"] > 0, service
        if service != "migrate":  # it has exited; the others run with exactly that set
            status = prod.exec(service, "cat", "/proc/1/status").stdout
            bounding = int(re.search(r"^CapBnd:\s*([0-9a-f]+)$", status, re.MULTILINE)[1], 16)
            assert bounding == sum(1 << CAPABILITY_BITS[name] for name in capabilities), service
    top = prod.compose("top", "web").stdout
    assert not re.search(r"^root\s", top, re.MULTILINE), top


def test_deploy_checks_pass_inside_the_prod_image(project):
    try:
        result = project.prod.compose("run", "--rm", "--no-deps", "web", "python", "manage.py",
                                      "check", "--deploy", "--fail-level", "WARNING")
        assert "System check identified no issues" in result.stdout
    finally:
        project.prod.down()


def test_data_survives_down_and_up(prod):
    name = f"kept-{secrets.token_hex(4)}"
    script = ("from django.contrib.auth import get_user_model; "
              f"print(get_user_model().objects.create(username={name!r}).pk)")
    created = prod.exec("web", "python", "manage.py", "shell", "-c", script).stdout.strip()
    assert created
    prod.down(volumes=False)
    prod.up()
    check = ("from django.contrib.auth import get_user_model; "
             f"print(get_user_model().objects.get(username={name!r}).pk)")
    assert prod.exec("web", "python", "manage.py", "shell", "-c", check).stdout.strip() == created


def established_connections_to_gunicorn(stack):
    """How many TCP connections to port 8000 the web container holds open, from other hosts."""
    table = stack.exec("web", "cat", "/proc/net/tcp").stdout.splitlines()[1:]
    return sum(1 for row in table if row.split()[1].endswith(":1F40")
               and row.split()[3] == "01" and not row.split()[2].startswith("0100007F"))


def answer(port, path, tls, timeout):
    """(status, body) of GET path over HTTPS, or the error that stopped it, as its repr."""
    try:
        return fetch(port, path, tls=tls, timeout=timeout)[:3:2]
    except (OSError, http.client.HTTPException) as error:
        return repr(error)


def hold_database(stack):
    """Make the web service's next queries wait: end its database sessions (Django reconnects
    on the next query), then stop the postmaster, so that new connections wait unanswered.
    Not `compose pause`: on cgroup v1 hosts the freezer can leave `unpause` hanging for good.
    SIGSTOP reaches the postmaster (PID 1) because it comes from outside its PID namespace."""
    user = stack.path.name
    stack.exec("db", "psql", "--username", user, "--dbname", user, "--quiet", "--command",
               "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
               "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    stack.compose("kill", "--signal", "SIGSTOP", "db")


def test_stopping_web_loses_no_request_it_accepted(prod):
    """`docker compose stop web` while requests are in flight and more keep coming: gunicorn
    finishes the ones it accepted, and the stream only ever sees complete responses."""
    port, trust = prod.port("caddy", 443), caddy_trust(prod)
    eventually(lambda: fetch(port, "/readyz", tls=trust)[0] == 200)
    stream, in_flight, stopped = [], [], threading.Event()

    def keep_requesting():  # a bounded stream: at most 400 requests, 90 s
        deadline = time.monotonic() + 90
        while not stopped.is_set() and len(stream) < 400 and time.monotonic() < deadline:
            try:
                stream.append(fetch(port, "/healthz", tls=trust, timeout=20)[0])
            except (OSError, http.client.HTTPException) as error:
                stream.append(repr(error))

    streamer = threading.Thread(target=keep_requesting)
    slow = [threading.Thread(target=lambda: in_flight.append(answer(port, "/readyz", trust, 60)))
            for _ in range(3)]
    streamer.start()
    try:
        eventually(lambda: stream.count(200) >= 3, timeout=30)
        # Holding the database holds /readyz requests inside gunicorn: accepted, not answered.
        hold_database(prod)
        try:
            for thread in slow:
                thread.start()
            # Three connections held open (the stream's come and go within milliseconds).
            eventually(lambda: min(established_connections_to_gunicorn(prod)
                                   for _ in range(3)) >= 3, timeout=30)
            started = time.monotonic()
            stopper = subprocess.Popen(prod.command("stop", "web"), cwd=prod.path, env=prod.env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            eventually(lambda: "Handling signal: term" in prod.compose("logs", "web").stdout,
                       timeout=30)
            time.sleep(1)  # draining, while the stopped database still holds the slow requests
        finally:
            prod.compose("kill", "--signal", "SIGCONT", "db", check=False)
        assert stopper.wait(timeout=60) == 0
        stop_seconds = time.monotonic() - started
    finally:
        stopped.set()
        for thread in [streamer, *slow]:
            if thread.ident is not None:
                thread.join(timeout=120)
    assert in_flight == [(200, "ok\n")] * 3
    assert stream and all(status in (200, 502, 503) for status in stream), stream
    assert stream.count(200) > 0
    state = prod.inspect("web")["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)  # not killed: gunicorn exited
    assert stop_seconds < 25  # within gunicorn's graceful_timeout: nothing waited for SIGKILL
    logs = prod.compose("logs", "web").stdout
    assert "WORKER TIMEOUT" not in logs and "Shutting down: Master" in logs


def test_caddy_holds_a_request_until_web_answers(prod):
    """Caddy starts beside web rather than after its health check (deploy/compose.yaml), so a
    request that comes while gunicorn is not listening yet, or while web restarts, waits for it
    (the Caddyfile's lb_try_duration) instead of failing."""
    port, trust = prod.port("caddy", 443), caddy_trust(prod)
    web = prod.inspect("web")["Id"]
    docker("stop", web)
    answers = []
    waiting = threading.Thread(target=lambda: answers.append(answer(port, "/healthz", trust, 30)))
    waiting.start()
    try:
        time.sleep(0.5)  # the request has reached Caddy, which finds no web container
        assert not answers
        assert prod.inspect("web")["State"]["Running"] is False
        docker("start", web)
    finally:
        waiting.join(timeout=60)
    assert answers == [(200, "ok\n")]


# --- dev/prod parity and production hardening, read from the files ---

INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")


def compose_file(stack, name):
    return yaml.safe_load((stack.path / name).read_text())


def declared_variables(project):
    """{name: default} of every variable config/env.py declares, asked from the project itself."""
    script = ("import json; from config import env, env_example; print(json.dumps({v.name: "
              "v.default for v in env.VARIABLES + env_example.COMPOSE_VARIABLES}))")
    result = docker("run", "--rm", "--user", f"{HOST_UID}:{HOST_GID}", "--volume",
                    f"{project.dev.path}:/app", project.dev.image("web"), "python", "-c", script)
    return json.loads(result.stdout)


def test_dev_and_prod_share_image_database_and_variables(project):
    dev = compose_file(project.dev, "compose.yaml")
    prod = compose_file(project.prod, "deploy/compose.yaml")
    declared = declared_variables(project)
    # The same Postgres image; the same Dockerfile for every service compose builds.
    assert dev["services"]["db"]["image"] == prod["services"]["db"]["image"]
    assert dev["services"]["db"]["image"].startswith("postgres:17")  # perhaps pinned: @sha256:…
    # Production adds the app's own role, not a superuser (deploy/scripts/db-app-role.sh).
    app_password = "${POSTGRES_APP_PASSWORD:?set POSTGRES_APP_PASSWORD in .env}"
    app_role = {"POSTGRES_APP_USER": f"{project.slug}_app", "POSTGRES_APP_PASSWORD": app_password}
    assert dev["services"]["db"]["environment"] | app_role == prod["services"]["db"]["environment"]
    builds = {(name, service["build"].get("context"), service["build"].get("dockerfile"),
               service["build"]["target"])
              for name, compose in (("dev", dev), ("prod", prod))
              for service in compose["services"].values() if "build" in service}
    with_notebooks = project.answers.get("notebooks", "yes") == "yes"
    notebook = {("dev", ".", None, "notebook")} if with_notebooks else set()
    # With IPFS, the backup service's image too: postgres:17 with an HTTP client for the node.
    with_ipfs = project.answers.get("ipfs", "yes") == "yes"
    backup = {("prod", "..", None, "backup")} if with_ipfs else set()
    assert builds == {("dev", ".", None, "dev"), ("prod", "..", None, "prod")} | notebook | backup
    # The app containers get the same variables: .env, plus names the settings schema declares.
    for compose in (dev, prod):
        for name, service in compose["services"].items():
            if "build" in service and service["build"]["target"] != "backup":
                assert service["env_file"] == ".env", name
                assert set(service["environment"]) <= set(declared), name
    assert dev["services"]["web"]["environment"]["DATABASE_URL"].replace(
        f"//{project.slug}:${{POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env}}@",
        f"//{project.slug}_app:{app_password}@") \
        == prod["services"]["web"]["environment"]["DATABASE_URL"]
    # Every variable a compose file reads is declared, with the same default.
    for stack, file in ((project.dev, "compose.yaml"), (project.prod, "deploy/compose.yaml")):
        used = INTERPOLATION.findall((stack.path / file).read_text())
        assert used, file
        for name, operator, default in used:
            assert name in declared, f"{file}: {name} is not declared (config/env*.py)"
            if operator == ":-":
                assert default == declared[name], f"{file}: {name} defaults to {default!r}"
        # And Compose itself accepts the file, with the .env beside it.
        execute(["docker", "compose", "-f", file, "config", "--quiet"], stack.path, stack.env)


def test_prod_compose_is_hardened(project):
    prod = compose_file(project.prod, "deploy/compose.yaml")
    services = prod["services"]
    assert set(services) == {"db", "migrate", "web", "caddy", "backup"} | (
        {"ipfs"} if with_ipfs(project.prod) else set())
    for name, service in services.items():
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert set(service.get("cap_add", [])) == PROD_CAPABILITIES[name], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service["deploy"]["resources"]["limits"]["memory"], name
        assert "healthcheck" in service, name
        assert service["restart"] == ("no" if name == "migrate" else "unless-stopped"), name
        assert "ports" not in service or name in ("caddy", "ipfs"), name  # ipfs: its swarm
        for dependency, condition in service.get("depends_on", {}).items():
            expected = {"migrate": "service_completed_successfully",
                        # Caddy holds requests until web answers (test below): it starts beside it.
                        "web": "service_started"}.get(dependency, "service_healthy")
            if (name, dependency) == ("web", "ipfs"):
                expected = "service_started"  # uploads wait for the node, the site not (test_ipfs)
            assert condition == {"condition": expected}, (name, dependency)
    assert services["web"]["depends_on"]["migrate"]
    # Docker waits longer than gunicorn's graceful stop: in-flight requests are never SIGKILLed.
    graceful_timeout = re.search(r"^graceful_timeout = (\d+)$",
                                 (project.prod.path / "config/gunicorn.conf.py").read_text(), re.M)
    grace = int(services["web"]["stop_grace_period"].removesuffix("s"))
    assert int(graceful_timeout[1]) < grace
    # No secret is written into the file: the password only ever comes from the environment.
    text = (project.prod.path / "deploy/compose.yaml").read_text()
    assert project.prod_values["POSTGRES_PASSWORD"] not in text
    assert "${POSTGRES_PASSWORD:?" in text
