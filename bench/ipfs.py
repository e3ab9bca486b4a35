"""Print the IPFS figures of the default project's production stack: uploads through the page
(HTTPS, Caddy, gunicorn, Kubo) of 1 KB, 1 MB and 50 MB files; the storage alone against Django's
FileSystemStorage, in the web container; and gateway reads through Caddy.

    uv run python bench/ipfs.py [--runs N]

Needs a Docker engine with BuildKit and Compose v2. Everything it creates (a generated project in
a temporary directory, images, containers, networks, volumes) is removed at the end. Every upload
is of fresh random bytes: nothing is deduplicated. FileSystemStorage writes to the container's
/tmp, a tmpfs (memory): the figure is the cost of the code path, not of a disk.
"""

import argparse
import json
import os
import secrets
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

# bench/containers.py, beside this
from containers import LOOPBACK_PORTS, run, write_production_env

TEMPLATE = Path(__file__).resolve().parent.parent
RUN = f"bench-{os.getpid()}-{secrets.token_hex(3)}"
SIZES = {"1 KB": 1_000, "1 MB": 1_000_000, "50 MB": 50_000_000}
PASSWORD = secrets.token_urlsafe(16)
# `python -c SETUP <code> <arguments>` in the web container: Django set up, then the code run.
SETUP = ("import django, os, sys; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; "
         "django.setup(); exec(sys.argv[1])")
# In the web container: seconds per save, for each storage and size, of fresh random bytes.
STORAGES = """
import json, os, sys, time
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from my_project.uploads.storage import ipfs_storage
runs, sizes = int(sys.argv[2]), json.loads(sys.argv[3])
stores = {"IPFS (Kubo)": ipfs_storage(), "FileSystemStorage": FileSystemStorage("/tmp/bench")}
times = {}
for label, size in sizes.items():
    for name, store in stores.items():
        spent = []
        for _ in range(runs):
            content = ContentFile(os.urandom(size), name="bench.bin")
            started = time.perf_counter()
            store.save("bench.bin", content)
            spent.append(time.perf_counter() - started)
        times[f"{name}|{label}"] = spent
print(json.dumps(times))
"""


def figures(label, size, seconds):
    median = statistics.median(seconds)
    return (f"{label:>6}: {median * 1000:9.1f} ms, {size / median / 1e6:8.3g} MB/s "
            f"(median of {len(seconds)})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="uploads per size (default 5)")
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as scratch:
        run([sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), "-o", scratch],
            cwd=scratch)
        project = Path(scratch) / "my_project"
        write_production_env(project, "IPFS_MAX_UPLOAD_SIZE=60000000\n")
        owner = project.stat()  # the backup service writes to backups/ as HOST_UID
        env = os.environ | LOOPBACK_PORTS | {"HOST_UID": str(owner.st_uid),
                                             "HOST_GID": str(owner.st_gid)}
        compose = ["docker", "compose", "-p", RUN, "-f", "deploy/compose.yaml"]
        try:
            run([*compose, "up", "--detach", "--wait", "--build"], project, env)
            run([*compose, "exec", "-T", "web", "python", "manage.py", "shell", "-v", "0", "-c",
                 "from django.contrib.auth import get_user_model; "
                 f"get_user_model().objects.create_user('bench', password={PASSWORD!r})"],
                project, env)
            port = run([*compose, "port", "caddy", "443"], project, env).stdout.rsplit(":", 1)[1]
            root = run([*compose, "exec", "-T", "caddy", "cat",
                        "/data/caddy/pki/authorities/local/root.crt"], project, env).stdout
            base = f"https://localhost:{port.strip()}"
            client = httpx.Client(base_url=base, verify=ssl.create_default_context(cadata=root),
                                  headers={"Referer": f"{base}/"}, timeout=300)
            client.get("/accounts/login/")
            client.post("/accounts/login/", data={
                "username": "bench", "password": PASSWORD,
                "csrfmiddlewaretoken": client.cookies["csrftoken"]})
            print(f"Uploads through the page (HTTPS, Caddy, gunicorn, Kubo), {runs} of each size:")
            links = {}
            for label, size in SIZES.items():
                spent = []
                for _ in range(runs):
                    data = os.urandom(size)
                    started = time.perf_counter()
                    response = client.post("/uploads/new/", data={
                        "csrfmiddlewaretoken": client.cookies["csrftoken"]},
                        files={"file": ("bench.bin", data)})
                    spent.append(time.perf_counter() - started)
                    if response.status_code != 302:
                        sys.exit(f"upload of {label} answered {response.status_code}")
                    links[label] = response.headers["location"]
                print(figures(label, size, spent))
            print("The storage alone, in the web container (save of the same sizes):")
            times = json.loads(run([*compose, "exec", "-T", "web", "python", "-c", SETUP, STORAGES,
                                    str(runs), json.dumps(SIZES)], project, env
                                   ).stdout.splitlines()[-1])  # after the app's log lines
            for key, seconds in times.items():
                name, label = key.split("|")
                print(f"  {name:>18} {figures(label, SIZES[label], seconds)}")
            print("Gateway reads through Caddy (https://ipfs.localhost/ipfs/<cid>):")
            for label, size in SIZES.items():
                page = client.get(links[label]).text
                link = page.split('href="https://ipfs.localhost/ipfs/', 1)[1].split('"', 1)[0]
                spent = []
                for _ in range(runs):
                    started = time.perf_counter()
                    # The gateway's own origin, on the same port (Caddy routes by Host).
                    body = client.get(f"/ipfs/{link}", headers={"Accept-Encoding": "identity",
                                                                "Host": "ipfs.localhost"})
                    spent.append(time.perf_counter() - started)
                    assert len(body.content) == size, (label, len(body.content))
                print(figures(label, size, spent))
        finally:
            run([*compose, "down", "--volumes", "--remove-orphans", "--rmi", "local"], project, env)


if __name__ == "__main__":
    main()
