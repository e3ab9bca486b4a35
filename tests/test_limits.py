"""Limits of the production stack, through Caddy over HTTPS (issue 22): request bodies refused
(413) before gunicorn sees them, and sign-in throttled by the client's real address."""

import re
import secrets
import select
import socket
import ssl
import time

import httpx
import pytest
import yaml

from conftest import generate
from test_containers import Project, caddy_trust, eventually, running, with_ipfs

pytestmark = pytest.mark.xdist_group("containers-default")
PASSWORD = secrets.token_urlsafe(16)
BODY = 200 * 1024 * 1024


@pytest.fixture(scope="module")
def prod(tmp_path_factory):
    """The default project's production stack (it has the upload page), up and healthy."""
    generated = Project({}, tmp_path_factory.mktemp("limits"))
    assert with_ipfs(generated.prod)
    try:
        generated.prod.compose("build", timeout=1200)
        with running(generated.prod) as stack:
            stack.exec("web", "python", "manage.py", "shell", "-v", "0", "-c",
                       "from django.contrib.auth import get_user_model; User = get_user_model(); "
                       f"[User.objects.create_user(name, password={PASSWORD!r}) "
                       "for name in ('member', 'other')]")
            stack.base = f"https://localhost:{stack.port('caddy', 443)}"
            stack.trust = caddy_trust(stack)
            eventually(lambda: httpx.get(f"{stack.base}/healthz", verify=stack.trust).is_success)
            yield stack
    finally:
        generated.remove_images()


def cgroup(stack, version_2, version_1):
    """A file of the web container's cgroup: cgroup v2's (GitHub's runners), else v1's."""
    return stack.exec("web", "sh", "-c", f"cat /sys/fs/cgroup/{version_2} 2>/dev/null "
                                         f"|| cat /sys/fs/cgroup/{version_1}").stdout


def web_memory(stack):
    """The web container's memory (its cgroup's, tmpfs included), in bytes."""
    return int(cgroup(stack, "memory.current", "memory/memory.usage_in_bytes"))


def post_huge_body(stack, path, size=BODY):
    """POST `size` bytes to path over HTTPS, sending while Caddy lets us; (status, seconds to
    the answer, bytes sent)."""
    port = int(stack.base.rsplit(":", 1)[1])
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    connection = stack.trust.wrap_socket(raw, server_hostname="localhost")
    start, sent, chunk = time.monotonic(), 0, b"x" * 65536
    connection.sendall((f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {size}\r\n"
                        "Content-Type: application/x-www-form-urlencoded\r\n\r\n").encode())
    answer = b""
    try:
        while sent < size and time.monotonic() - start < 60:
            if select.select([connection], [], [], 0)[0]:
                break  # Caddy answered (or closed) before the body was sent
            connection.sendall(chunk)
            sent += len(chunk)
    except (ConnectionError, ssl.SSLError):
        pass  # Caddy closed the connection after answering
    try:
        connection.settimeout(30)
        while b"\r\n" not in answer:
            data = connection.recv(4096)
            if not data:
                break
            answer += data
    finally:
        connection.close()
    status = re.match(rb"HTTP/1\.1 (\d+)", answer)
    return (int(status.group(1)) if status else None), time.monotonic() - start, sent


def temporary_files(stack):
    return stack.exec("web", "find", "/tmp", "-type", "f").stdout.split()


def test_a_200_mb_body_gets_413_at_once_and_never_reaches_web(prod):
    before = web_memory(prod)
    figures = {}
    for path in ("/accounts/login/", "/uploads/new/"):
        status, seconds, sent = post_huge_body(prod, path)
        figures[path] = (status, round(seconds, 2), sent)
        assert status == 413, figures
        assert seconds < 10, figures
        assert sent < BODY // 2, figures
    after = web_memory(prod)
    print(f"web memory before {before / 2**20:.1f} MiB, after {after / 2**20:.1f} MiB; "
          f"(status, seconds to answer, bytes sent): {figures}")
    assert after - before < 8 * 2**20
    assert temporary_files(prod) == []


def sign_in(stack, username, password, forwarded_for=None):
    """A sign-in through the form, as a fresh client; its status."""
    headers = {"Referer": f"{stack.base}/"} | (
        {"X-Forwarded-For": forwarded_for} if forwarded_for else {})
    with httpx.Client(base_url=stack.base, verify=stack.trust, headers=headers, timeout=60) as client:
        client.get("/accounts/login/").raise_for_status()
        return client.post("/accounts/login/", data={
            "username": username, "password": password,
            "csrfmiddlewaretoken": client.cookies["csrftoken"]}).status_code


def web_cpu_seconds(stack):
    stat = cgroup(stack, "cpu.stat", "cpuacct/cpuacct.usage")
    usage = re.search(r"usage_usec (\d+)", stat)
    return int(usage.group(1)) / 1e6 if usage else int(stat) / 1e9


def test_sign_in_is_throttled_by_the_real_client_address_whatever_it_forwards(prod):
    statuses = [sign_in(prod, "member", f"wrong-{number}", forwarded_for=f"192.0.2.{number}")
                for number in range(10)]
    assert statuses == [200] * 9 + [429]
    assert sign_in(prod, "member", PASSWORD) == 429  # the right password, the 11th: refused
    # Another account, from the same (real) address: this address is locked too, however it
    # names itself in X-Forwarded-For.
    assert sign_in(prod, "other", PASSWORD, forwarded_for="198.51.100.1") == 429
    prod.exec("web", "python", "manage.py", "axes_reset")
    assert sign_in(prod, "other", PASSWORD) == 302


def wrong_passwords(stack, count=100):
    """(refused with 429, web's CPU seconds) for `count` wrong passwords for one account."""
    stack.exec("web", "python", "manage.py", "axes_reset")
    start = web_cpu_seconds(stack)
    statuses = [sign_in(stack, "member", f"wrong-{number}") for number in range(count)]
    return statuses.count(429), web_cpu_seconds(stack) - start


def test_100_wrong_passwords_cost_a_tenth_of_the_cpu_they_did(prod):
    refused, throttled = wrong_passwords(prod)
    assert refused == 91
    # Without the lock, as before it (the limit out of reach): every guess hashes a password.
    env_file = prod.path / "deploy" / ".env"
    values = env_file.read_text()
    try:
        env_file.write_text(values + "LOGIN_FAILURE_LIMIT=1000\n")
        prod.compose("up", "--detach", "--wait", "web")
        unrefused, unthrottled = wrong_passwords(prod)
    finally:
        env_file.write_text(values)
        prod.compose("up", "--detach", "--wait", "web")
        prod.exec("web", "python", "manage.py", "axes_reset")
    print(f"100 wrong passwords: web spent {throttled:.1f} s of CPU throttled ({refused} refused), "
          f"{unthrottled:.1f} s without the lock ({unrefused} refused)")
    assert unrefused == 0
    assert throttled < unthrottled / 3


@pytest.mark.parametrize("ipfs", ["yes", "no"])
def test_every_tmpfs_has_a_size(tmp_path, ipfs):
    """A tmpfs counts as its container's memory: unbounded, one large request could fill it."""
    path = generate(tmp_path, ipfs=ipfs)
    mounts = []
    for name in ("compose.yaml", "deploy/compose.yaml"):  # Swarm's: test_swarm.py, merged
        compose = yaml.safe_load((path / name).read_text())
        for service in [compose.get("x-app", {}), *compose["services"].values()]:
            mounts += [(name, mount, "size=" in mount) for mount in service.get("tmpfs", [])]
            mounts += [(name, mount["target"], bool(mount.get("tmpfs", {}).get("size")))
                       for mount in service.get("volumes", [])
                       if isinstance(mount, dict) and mount["type"] == "tmpfs"]
    for manifest in (path / "deploy/kubernetes/base").glob("*.yaml"):
        for document in yaml.safe_load_all(manifest.read_text()):
            pod = (document or {}).get("spec", {}).get("template", {}).get("spec", {})
            mounts += [(manifest.name, volume["name"], "sizeLimit" in volume["emptyDir"])
                       for volume in pod.get("volumes", []) if "emptyDir" in volume]
    assert len(mounts) >= 8
    assert [mount for mount in mounts if not mount[2]] == []
