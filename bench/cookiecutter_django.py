"""Print Shipshape's production image and web container side by side with cookiecutter-django's:
image size, cold build time, the web container's memory idle and after load, and requests per
second, latency and errors straight to gunicorn, with the ratios Shipshape / cookiecutter-django.

    uv run python bench/cookiecutter_django.py [--template PATH_OR_URL] [--seconds 10] [--rounds 3]

Needs Docker with BuildKit, Compose v2 and Buildx, wrk (Debian: `apt-get install wrk`), and PyPI
and Debian's package mirror: cookiecutter-django's post-generation hook resolves its
dependencies with `uv add` (in a container it builds), and both images install theirs. The
template is cookiecutter-django's GitHub repository by default; `--template` takes a local copy.

Both default projects are generated: cookiecutter-django's with the few answers its production
image needs here, and with the edits this machine forces (both printed at the end, with their
reasons: the images only come from a Docker Hub mirror holding python:3.13-slim, postgres:17 and
redis:8). Each production image is built cold, as its own compose file builds it (--no-cache,
and cache mounts of this run only, so every package is downloaded; base images are pulled
first, not counted). Each app runs as its production compose file runs it, without the reverse
proxy: cookiecutter-django's django service (its /start: collectstatic, then gunicorn with its
.envs' WEB_CONCURRENCY) with PostgreSQL and Redis, after `manage.py migrate` as its docs say;
Shipshape's deploy/compose.yaml web service with what it depends on. Each round recreates each
web container (the two apps in turn, first one then the other), waits for the first answer to
GET of the admin login page, which must be a 200 (with `X-Forwarded-Proto: https`, as the
proxy sends: otherwise Django answers a cheap redirect), lets it settle 3 s, reads its memory,
loads it with `wrk -t2 -c32` on that page (after a 2-second warm-up) and reads its memory again
and the CPU time it used (its cgroup's), then times the same page in-process: the project's WSGI
application called in a loop inside the container, which is Django's share of each request
without the server (the two apps render the same admin template, so this share is the floor no
server configuration moves).
The figures are medians over rounds. Ports are published on 127.0.0.1 only. Everything it
creates (projects, containers, volumes, networks, images, cache mounts) is removed at the end.
"""

import argparse
import http.client
import json
import os
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml
from containers import (LOOPBACK_PORTS, remove_cache_mounts, use_fresh_cache_mounts,
                        write_production_env)
from serving import PROXIED, memory_mib, run, wrk_with_cpu

TEMPLATE = Path(__file__).resolve().parent.parent
RUN = f"bench-{os.getpid()}-{secrets.token_hex(3)}"
BASE_IMAGES = ["python:3.13-slim", "postgres:17", "redis:8"]
# Run in the web container (both projects have config/wsgi.py): 300 warm-up requests, then the
# median CPU milliseconds per request of 5 batches of 200, and the status code.
IN_PROCESS = """
import io, statistics, sys, time
sys.path.insert(0, ".")
from config.wsgi import application
statuses = set()
def get():
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": sys.argv[1], "QUERY_STRING": "",
               "SERVER_NAME": "localhost", "SERVER_PORT": "80", "HTTP_HOST": "localhost",
               "HTTP_X_FORWARDED_PROTO": "https", "SERVER_PROTOCOL": "HTTP/1.1",
               "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr}
    body = application(environ, lambda status, headers, exc_info=None: statuses.add(status[:3]))
    b"".join(body)
    body.close()
for _ in range(300):
    get()
batches = []
for _ in range(5):
    started = time.process_time()
    for _ in range(200):
        get()
    batches.append((time.process_time() - started) * 1000 / 200)
print(statistics.median(batches), *statuses)
"""
# The image cookiecutter-django's post-generation hook builds to run `uv add` in, and keeps.
HOOK_IMAGE = "cookiecutter-django-uv-runner:latest"

# cookiecutter-django's answers that differ from its defaults: {name: (value, why)}.
ANSWERS = {
    "use_docker": ("y", "its default (n) generates no Dockerfile: the production image is what "
                        "is compared"),
    "cloud_provider": ("None", "its default (AWS) uploads static files to S3 at every start"),
    "use_whitenoise": ("y", "then WhiteNoise serves static files (its pre-generation hook "
                            "requires it without a cloud provider)"),
    "postgresql_version": ("17", "its default (18) has no image here"),
}
UV_FROM_PYPI = ("FROM python:3.13-slim AS {}\n"
                "RUN pip install --no-cache-dir --root-user-action=ignore uv")
GHCR_UV = "FROM ghcr.io/astral-sh/uv:python3.14-bookworm-slim AS {}"
# Edits forced by this machine: (file, upstream text, replacement, why). The template's are made
# before generation, since its hook uses them; the project's after.
TEMPLATE_EDITS = [
    ("compose/local/uv/Dockerfile", GHCR_UV.format("python"), UV_FROM_PYPI.format("python"),
     "ghcr.io is unreachable: the hook's `uv add` runs in python:3.13-slim with uv from PyPI"),
    ("pyproject.toml", 'requires-python = "==3.14.*"', 'requires-python = "==3.13.*"',
     "Python 3.13 is the only Python image here; the hook's `uv add` then locks for 3.13"),
    (".python-version", "3.14", "3.13", "the same (uv sync reads it in the image build)"),
]
PROJECT_EDITS = [
    ("compose/production/django/Dockerfile", GHCR_UV.format("python-build-stage"),
     UV_FROM_PYPI.format("python-build-stage"),
     "ghcr.io is unreachable: python:3.13-slim with uv installed by pip"),
    ("compose/production/django/Dockerfile", "FROM python:3.14-slim-bookworm AS",
     "FROM python:3.13-slim AS", "the only Python image here (Debian trixie)"),
    ("compose/production/django/Dockerfile",
     "RUN addgroup --system django \\\n  && adduser --system --ingroup django --home "
     "/home/django django",
     "RUN groupadd --system django \\\n  && useradd --system --gid django --create-home "
     "--home-dir /home/django django",
     "Debian trixie has no addgroup/adduser"),
]
# The service images of docker-compose.production.yml that exist nowhere here: {service: image}.
SERVICE_IMAGES = {"redis": "redis:8"}
# What an operator fills in, in .envs/.production/.django: {variable: (value, why)}.
OPERATOR_SETTINGS = {
    "DJANGO_ALLOWED_HOSTS": ("localhost", "the site's name in this benchmark (upstream: "
                                          ".example.com, the template's domain_name)"),
    "MAILGUN_API_KEY": ("placeholder-not-a-key", "empty upstream; nothing is mailed"),
    "MAILGUN_DOMAIN": ("mail.invalid", "empty upstream; nothing is mailed"),
}


def edit(path, old, new):
    text = path.read_text()
    if old not in text:
        sys.exit(f"{path}: upstream changed, this text is gone:\n{old}")
    path.write_text(text.replace(old, new))


class App:
    """One production compose stack, its web service published on 127.0.0.1."""

    def __init__(self, name, key, project, compose_file, web, port, path, images, env=None):
        self.name, self.project, self.web, self.port, self.path = name, project, web, port, path
        self.images, self.env = images, env
        self.compose = ["docker", "compose", "-p", f"{RUN}-{key}",
                        "-f", compose_file, "-f", str(project / "bench.compose.json")]

    def __call__(self, *arguments, check=True):
        return run([*self.compose, *arguments], self.project, self.env, check)

    def build_cold(self):
        """Seconds to build the web image with no layer cache and empty cache mounts."""
        started = time.perf_counter()
        self("build", "--no-cache", self.web)
        return time.perf_counter() - started

    def image_size(self):
        return int(run(["docker", "image", "inspect", "--format", "{{.Size}}", self.images[0]],
                       ".").stdout)

    def recreate_web(self):
        """A new web container; seconds until it answered the page, which must be a 200."""
        started = time.perf_counter()
        self("up", "--detach", "--no-deps", "--force-recreate", self.web)
        port = self("port", self.web, str(self.port)).stdout.strip().rsplit(":", 1)[1]
        self.url = f"http://127.0.0.1:{port}{self.path}"
        while (status := self.status(port)) is None:  # not listening yet
            if time.perf_counter() - started > 180:
                sys.exit(f"{self.name}: no answer on {self.url} within 180 s\n"
                         f"{self('logs', self.web, check=False).stdout[-3000:]}")
            time.sleep(0.2)
        if status != 200:
            sys.exit(f"{self.name}: GET {self.path} answered {status}, not the page\n"
                     f"{self('logs', self.web, check=False).stdout[-3000:]}")
        return time.perf_counter() - started

    def status(self, port):
        """The status of GET of the page, as the proxy would send it; None without an answer."""
        connection = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
        try:
            connection.request("GET", self.path, headers={"Host": "localhost", **PROXIED})
            return connection.getresponse().status
        except (OSError, http.client.HTTPException):
            return None
        finally:
            connection.close()

    def measure(self, seconds):
        ready = self.recreate_web()
        container = self("ps", "--quiet", self.web).stdout.strip()
        time.sleep(3)  # idle: the workers have started and settled
        idle = memory_mib(container)
        processes = len(run(["docker", "top", container], ".").stdout.splitlines()) - 1
        load, cpu = wrk_with_cpu(self.url, seconds, [container], PROXIED)
        return {"ready": ready, "idle": idle, "loaded": memory_mib(container),
                "processes": processes, **load, "cpu_ms": cpu[container],
                "django_ms": self.django_ms(container)}

    def django_ms(self, container):
        """CPU milliseconds per GET of the page inside the web container, by the project's own
        WSGI application called in one process: Django's share of a request, without gunicorn,
        sockets or the load generator."""
        output = run(["docker", "exec", container, "python", "-c", IN_PROCESS, self.path],
                     ".").stdout.split()
        if output[1:] != ["200"]:
            sys.exit(f"{self.name}: in-process GET {self.path} answered {output[1:]}")
        return float(output[0])

    def remove(self):
        self("down", "--volumes", "--remove-orphans", check=False)
        run(["docker", "rmi", "--force", *self.images], ".", check=False)


def shipshape(scratch):
    run([sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), "-o",
         str(scratch / "shipshape")], cwd=scratch)
    project = scratch / "shipshape" / "my_project"
    write_production_env(project)
    use_fresh_cache_mounts(project / "Dockerfile", RUN)
    image = f"{RUN}-shipshape-web"
    # migrate runs the same image: named alike, it is found rather than built again.
    (project / "bench.compose.json").write_text(json.dumps({"services": {
        "web": {"image": image, "ports": ["127.0.0.1::8000"]},
        "migrate": {"image": image},
    }}))
    # The IPFS node's swarm port on 127.0.0.1 only (Caddy, whose ports are alike, is not started).
    env = dict(os.environ) | LOOPBACK_PORTS
    return App("Shipshape", "shipshape", project, "deploy/compose.yaml", "web", 8000,
               "/admin/login/", [image], env)


def template_copy(source, scratch):
    """A copy of cookiecutter-django's template (cloned when source is a URL), to edit."""
    copy = scratch / "cookiecutter-django"
    if Path(source).is_dir():
        shutil.copytree(source, copy, symlinks=True)
    else:
        from cookiecutter.config import BUILTIN_ABBREVIATIONS
        from cookiecutter.repository import determine_repo_dir
        clone, _ = determine_repo_dir(source, BUILTIN_ABBREVIATIONS, str(scratch / "clone"),
                                      checkout=None, no_input=True)
        shutil.copytree(clone, copy, symlinks=True)
    return copy


def cookiecutter_django(source, scratch, upstream_images):
    """cookiecutter-django's project, ready to build; fills upstream_images ({service: image})."""
    template = template_copy(source, scratch)
    for name, old, new, _ in TEMPLATE_EDITS:
        edit(template / "{{cookiecutter.project_slug}}" / name, old, new)
    run([sys.executable, "-m", "cookiecutter", "--no-input", str(template), "-o",
         str(scratch / "ccd"), *[f"{name}={value}" for name, (value, _) in ANSWERS.items()]],
        cwd=scratch)
    [project] = (scratch / "ccd").iterdir()
    for name, old, new, _ in PROJECT_EDITS:
        edit(project / name, old, new)
    use_fresh_cache_mounts(project / "compose/production/django/Dockerfile", RUN)
    envs = project / ".envs/.production/.django"
    for name, (value, _) in OPERATOR_SETTINGS.items():
        edit(envs, re.search(rf"^{name}=.*$", envs.read_text(), re.M)[0], f"{name}={value}")
    admin_url = re.search(r"^DJANGO_ADMIN_URL=(.*)$", envs.read_text(), re.M)[1]
    compose_file = "docker-compose.production.yml"
    services = yaml.safe_load((project / compose_file).read_text())["services"]
    upstream_images.update({name: services[name]["image"] for name in SERVICE_IMAGES})
    images = [f"{RUN}-ccd-django", f"{RUN}-ccd-postgres"]
    (project / "bench.compose.json").write_text(json.dumps({"services": {
        "django": {"image": images[0], "ports": ["127.0.0.1::5000"]},
        "postgres": {"image": images[1]},
        **{name: {"image": image} for name, image in SERVICE_IMAGES.items()},
    }}))
    return App("cookiecutter-django", "ccd", project, compose_file, "django", 5000,
               f"/{admin_url}login/", images)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", default="gh:cookiecutter/cookiecutter-django",
                        help="cookiecutter-django: a directory or what cookiecutter accepts")
    parser.add_argument("--seconds", type=int, default=10, help="of load per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="of each app")
    arguments = parser.parse_args()
    hook_image_existed = run(["docker", "image", "inspect", HOOK_IMAGE], ".",
                             check=False).returncode == 0
    apps, builds, rounds, upstream_images = [], {}, {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        try:
            apps.append(shipshape(Path(scratch)))
            apps.append(cookiecutter_django(arguments.template, Path(scratch), upstream_images))
            for image in BASE_IMAGES:
                run(["docker", "pull", "--quiet", image], ".")
            for app in apps:
                builds[app.name] = (app.build_cold(), app.image_size())
                rounds[app.name] = []
            apps[0]("up", "--detach", "--wait", "web")  # db, migrate, ipfs, web
            apps[1]("build", "postgres")
            apps[1]("run", "--rm", "django", "python", "manage.py", "migrate", "--noinput")
            for number in range(arguments.rounds):
                for app in apps if number % 2 == 0 else apps[::-1]:
                    rounds[app.name].append(app.measure(arguments.seconds))
        finally:
            for app in apps:
                app.remove()
            if not hook_image_existed:
                run(["docker", "rmi", "--force", HOOK_IMAGE], ".", check=False)
            remove_cache_mounts(RUN)
    report(apps, builds, rounds, upstream_images, arguments)


def report(apps, builds, rounds, upstream_images, arguments):
    def median(app, key):
        return statistics.median(result[key] for result in rounds[app.name])

    rows = [  # label, format, {app name: figure}
        ("image size (MB)", ".1f", {a.name: builds[a.name][1] / 1e6 for a in apps}),
        ("cold build (s)", ".1f", {a.name: builds[a.name][0] for a in apps}),
        ("new web container to first page (s)", ".1f",
         {a.name: median(a, "ready") for a in apps}),
        ("web processes", ".0f", {a.name: median(a, "processes") for a in apps}),
        ("idle memory (MiB)", ".1f", {a.name: median(a, "idle") for a in apps}),
        ("memory after load (MiB)", ".1f", {a.name: median(a, "loaded") for a in apps}),
        ("requests/s", ".0f", {a.name: median(a, "rps") for a in apps}),
        ("p50 latency (ms)", ".1f", {a.name: median(a, "p50") for a in apps}),
        ("p99 latency (ms)", ".1f", {a.name: median(a, "p99") for a in apps}),
        ("CPU per request under load (ms)", ".2f", {a.name: median(a, "cpu_ms") for a in apps}),
        ("Django alone, CPU per request (ms)", ".2f",
         {a.name: median(a, "django_ms") for a in apps}),
        ("errors (most in a round)", ".0f",
         {a.name: max(r["errors"] for r in rounds[a.name]) for a in apps}),
    ]
    ours, theirs = (app.name for app in apps)
    print(f"Shipshape and cookiecutter-django, default projects in production ({os.cpu_count()} "
          f"CPUs; wrk -t2 -c32 {arguments.seconds} s on the admin login page straight to "
          f"gunicorn; medians of {arguments.rounds} rounds):")
    print(f"  {'':38} {ours:>10} {theirs:>20} {'ratio':>6}")
    for label, spec, figures in rows:
        ratio = f"{figures[ours] / figures[theirs]:6.2f}" if figures[theirs] else ""
        print(f"  {label:38} {figures[ours]:>10{spec}} {figures[theirs]:>20{spec}} {ratio:>6}")
    print("  ratio: Shipshape / cookiecutter-django")
    paired = [mine["rps"] / other["rps"] for mine, other in zip(rounds[ours], rounds[theirs])]
    print(f"  requests/s ratio within each round: {' '.join(f'{r:.2f}' for r in paired)}")
    print("  CPU per request under load: the web container's CPU time (gunicorn and Django) over "
          "the requests served; Django alone: the project's WSGI application called in a loop "
          "inside the container, without gunicorn")
    print(f"cookiecutter-django ({arguments.template}), as upstream except:")
    for name, (value, why) in ANSWERS.items():
        print(f"  answer {name}={value}: {why}")
    for name, old, new, why in TEMPLATE_EDITS + PROJECT_EDITS:
        print(f"  {name}: {old!r} -> {new!r}: {why}")
    for name, image in SERVICE_IMAGES.items():
        print(f"  docker-compose.production.yml: {name} {upstream_images[name]} -> {image}: "
              "the only one here")
    print("  docker-compose.production.yml: traefik and nginx not started (gunicorn is measured "
          "straight)")
    for name, (value, why) in OPERATOR_SETTINGS.items():
        print(f"  .envs/.production/.django {name}={value}: {why}")
    print("Both: image names of this run, ports on 127.0.0.1, cache mounts of this run (cold "
          "builds); Shipshape's IPFS swarm port on 127.0.0.1.")


if __name__ == "__main__":
    main()
