"""Print the container figures of the default project: prod image size, build and rebuild times,
and how long `docker compose up` takes to reach healthy, for dev and prod.

    uv run python bench/containers.py [--runs N]

Needs a Docker engine with BuildKit, Compose v2 and Buildx. Everything it creates (a generated
project in a temporary directory, images, containers, networks, volumes, cache mounts) is removed
at the end. The cold build uses fresh BuildKit cache mounts, so it includes downloading every
locked package; the base image is pulled beforehand and not counted.
"""

import argparse
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent.parent
RUN = f"bench-{os.getpid()}-{secrets.token_hex(3)}"
# The production stack's published ports, each picked by Docker, on 127.0.0.1 only: Docker picks
# the IPv6 port apart from the IPv4 one and they can differ (moby/moby#42442), while wrk and httpx
# may try localhost's ::1 first and reach another stack's container there.
LOOPBACK_PORTS = dict.fromkeys(("HTTP_PORT", "HTTPS_PORT", "IPFS_SWARM_PORT"), "127.0.0.1:")


def run(command, cwd, env=None):
    result = subprocess.run(command, cwd=cwd, env=env, text=True, capture_output=True,
                            check=False)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} exited {result.returncode}\n{result.stdout[-3000:]}\n"
                 f"{result.stderr[-3000:]}")
    return result


def write_production_env(project, extra=""):
    """The .env an operator writes on a server (deploy/.env, beside deploy/compose.yaml, which
    reads it): real secrets, the site on localhost."""
    (project / "deploy" / ".env").write_text(
        f"SECRET_KEY={secrets.token_urlsafe(64)}\nALLOWED_HOSTS=localhost\n"
        "EMAIL_URL=smtp://mail.invalid\n"  # nothing is mailed in a benchmark
        f"POSTGRES_PASSWORD={secrets.token_urlsafe(24)}\n"
        f"POSTGRES_APP_PASSWORD={secrets.token_urlsafe(24)}\nSITE_ADDRESS=localhost\n{extra}")


def use_fresh_cache_mounts(dockerfile, run_id):
    """Give the Dockerfile's cache mounts ids of this run: its cold build downloads everything,
    as a new machine's would."""
    dockerfile.write_text(re.sub(r"--mount=type=cache,target=(\S+)",
                                 lambda m: f"--mount=type=cache,id={run_id}{m[1]},target={m[1]}",
                                 dockerfile.read_text()))


def remove_cache_mounts(run_id):
    """BuildKit's cache mounts that use_fresh_cache_mounts named for this run."""
    records = subprocess.run(["docker", "buildx", "du", "--verbose"], text=True,
                             capture_output=True, check=False).stdout
    for record in records.split("\n\n"):
        if f'with id "/{run_id}' in record:
            identifier = re.search(r"^ID:\s+(\S+)", record, re.M)[1]
            subprocess.run(["docker", "builder", "prune", "--force", "--filter",
                            f"id={identifier}"], capture_output=True, check=False)


def timed(command, cwd, env=None):
    started = time.perf_counter()
    result = run(command, cwd, env)
    return time.perf_counter() - started, result


def rebuilt_steps(build_output):
    """The build steps that ran rather than came from the cache (BuildKit's plain progress)."""
    steps = dict(re.findall(r"^#(\d+) (\[[^\]]+\] .*)$", build_output, re.MULTILINE))
    cached = set(re.findall(r"^#(\d+) CACHED$", build_output, re.MULTILINE))
    return [text[:90] for number, text in steps.items()
            if number not in cached and not text.startswith("[internal]")
            and " FROM " not in text]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each `up` (default 3)")
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as scratch:
        run([sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), "-o", scratch],
            cwd=scratch)
        project = Path(scratch) / "my_project"
        use_fresh_cache_mounts(project / "Dockerfile", RUN)
        env = dict(os.environ) | {"WEB_PORT": "0", "HTTP_PORT": "0", "HTTPS_PORT": "0",
                                  "HOST_UID": str(os.getuid()),
                                  "HOST_GID": str(os.getgid())}
        tag = f"shipshape-{RUN}:prod"
        dev = ["docker", "compose", "-p", f"shipshape-{RUN}-dev"]
        prod = ["docker", "compose", "-p", f"shipshape-{RUN}-prod", "-f", "deploy/compose.yaml"]
        try:
            run(["docker", "pull", "--quiet", "python:3.13-slim"], cwd=project)
            build = ["docker", "build", "--progress", "plain", "--target", "prod", "-t", tag, "."]
            cold, _ = timed([*build[:2], "--no-cache", *build[2:]], project, env)
            size = int(run(["docker", "image", "inspect", "--format", "{{.Size}}", tag],
                           project).stdout)
            base = int(run(["docker", "image", "inspect", "--format", "{{.Size}}",
                            "python:3.13-slim"], project).stdout)
            views = project / "my_project" / "views.py"
            rebuilds = []
            for number in range(runs):
                # Unique to this run: BuildKit would take a context seen before from its cache.
                views.write_text(views.read_text() + f"# a one-line change ({RUN}, {number})\n")
                seconds, result = timed(build, project, env)
                rebuilds.append(seconds)
            dev_build, _ = timed([*dev, "build"], project, env)

            dev_up = []
            for _ in range(runs):
                seconds, _ = timed([*dev, "up", "--detach", "--wait"], project, env)
                dev_up.append(seconds)
                run([*dev, "down", "--volumes", "--remove-orphans"], project, env)

            write_production_env(project)
            run([*prod, "build"], project, env)
            prod_up = []
            for _ in range(runs):
                seconds, _ = timed([*prod, "up", "--detach", "--wait"], project, env)
                prod_up.append(seconds)
                run([*prod, "down", "--volumes", "--remove-orphans"], project, env)
        finally:
            for compose in (dev, prod):
                subprocess.run([*compose, "down", "--volumes", "--remove-orphans", "--rmi",
                                "local"], cwd=project, env=env, capture_output=True, check=False)
            subprocess.run(["docker", "rmi", "--force", tag], capture_output=True, check=False)
            remove_cache_mounts(RUN)

    mb = 1_000_000
    print("containers of the default project (Docker "
          f"{run(['docker', 'version', '--format', '{{.Server.Version}}'], '.').stdout.strip()}, "
          f"{os.cpu_count()} CPUs):")
    print(f"  prod image size:              {size / mb:.1f} MB "
          f"(base python:3.13-slim {base / mb:.1f} MB + {(size - base) / mb:.1f} MB)")
    print(f"  cold build, prod:             {cold:.1f} s (no layer cache, empty download cache)")
    print(f"  rebuild after a one-line change: {spread(rebuilds)}; steps that ran:")
    for step in rebuilt_steps(result.stderr):
        print(f"      {step}")
    print(f"  dev image build (on prod's cached layers): {dev_build:.1f} s")
    for name, seconds in (("dev", dev_up), ("prod", prod_up)):
        print(f"  up to healthy, {name + ':':5}      {spread(seconds)}, images built")


def spread(seconds):
    return (f"median {statistics.median(seconds):.1f} s (min {min(seconds):.1f}, "
            f"max {max(seconds):.1f}, {len(seconds)} runs)")


if __name__ == "__main__":
    main()
