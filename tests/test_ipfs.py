"""The container tier, IPFS (issue 8): a file uploaded through the page with a real HTTP client
comes back by its CID from the node's gateway, in development (127.0.0.1) and in production
(through Caddy, over HTTPS); a stopped node is a clear error, no row, /healthz/ipfs says so and
/readyz (the database only) does not; the node started again works without restarting web; a second node keeps the content alive; the
upload pages pass in a real browser."""

import html
import json
import re
import secrets
import socket
import subprocess

import httpx
import pytest
from playwright.sync_api import expect

from test_containers import (Project, assert_page_passes, browser_page, caddy_trust, docker,
                             eventually, navigate, running, sign_in, submit, with_ipfs)

# On the worker that builds the default project's images for test_containers.py: the builds
# here are then all cache hits.
pytestmark = pytest.mark.xdist_group("containers-default")
PASSWORD = secrets.token_urlsafe(16)
CID_LINK = re.compile(r'href="([^"]*/ipfs/(\w+)\?filename=[^"]*)"')


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The default project (it has ipfs), generated and built."""
    generated = Project({}, tmp_path_factory.mktemp("ipfs"))
    assert with_ipfs(generated.dev)
    try:
        generated.build()
        yield generated
    finally:
        generated.remove_images()


def published(stack, service):
    return {port: [(binding["HostIp"]) for binding in bindings] for port, bindings in
            stack.inspect(service)["HostConfig"]["PortBindings"].items()}


def create_member(stack):
    stack.exec("web", "python", "manage.py", "shell", "-v", "0", "-c",
               "from django.contrib.auth import get_user_model; "
               f"get_user_model().objects.create_user('member', password={PASSWORD!r})")


def signed_in(base_url, **options):
    """An HTTP client with the site's cookies, signed in as `member` through the sign-in form."""
    client = httpx.Client(base_url=base_url, headers={"Referer": f"{base_url}/"}, timeout=60,
                          **options)
    client.get("/accounts/login/").raise_for_status()
    response = client.post("/accounts/login/", data={
        "username": "member", "password": PASSWORD,
        "csrfmiddlewaretoken": client.cookies["csrftoken"]})
    assert response.status_code == 302, response.text
    return client


def upload(client, name, data):
    client.get("/uploads/new/").raise_for_status()
    return client.post("/uploads/new/", data={"csrfmiddlewaretoken": client.cookies["csrftoken"]},
                       files={"file": (name, data, "application/octet-stream")})


def rows(stack):
    return int(stack.exec("web", "python", "manage.py", "shell", "-v", "0", "-c",
                          "print(Upload.objects.count())").stdout)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_dev_upload_is_served_by_the_gateway_and_a_stopped_node_is_a_clear_error(project):
    # A port of its own for the gateway, as a developer's 8080: links name it, so not 0.
    project.dev.env = project.dev.env | {"IPFS_GATEWAY_PORT": str(free_port())}
    with running(project.dev) as dev:
        assert published(dev, "ipfs") == {"8080/tcp": ["127.0.0.1"]}  # the RPC API: never
        create_member(dev)
        web, gateway = dev.port("web", 8000), dev.port("ipfs", 8080)
        client = signed_in(f"http://127.0.0.1:{web}")
        data = secrets.token_bytes(300_000)  # more than one block
        response = upload(client, "sample.bin", data)
        assert response.status_code == 302, response.text
        page = client.get(response.headers["location"]).text
        link, cid = CID_LINK.search(page).groups()
        assert f"ipfs://{cid}" in page
        # The link names the dev gateway as compose publishes it (IPFS_GATEWAY_PORT).
        assert link.startswith(f"http://127.0.0.1:{gateway}/ipfs/{cid}")
        assert httpx.get(html.unescape(link)).content == data

        dev.compose("stop", "ipfs")
        failed = upload(client, "later.bin", b"not stored")
        assert failed.status_code == 503
        assert "The file was not stored, the IPFS node at http://ipfs:5001 did not answer" \
            in failed.text
        assert client.get("/readyz").text == "ok\n"
        check = client.get("/healthz/ipfs")
        assert check.status_code == 503
        assert check.text.startswith("ipfs node at http://ipfs:5001: unreachable ("), check.text
        assert rows(dev) == 1

        dev.compose("start", "ipfs")
        eventually(lambda: client.get("/healthz/ipfs").status_code == 200, timeout=90)
        assert upload(client, "later.bin", b"stored now").status_code == 302
        assert rows(dev) == 2


def test_prod_serves_uploads_at_the_sites_own_ipfs_path_over_https(project):
    with running(project.prod) as prod:
        # The swarm only: the RPC API and the gateway stay on the compose network.
        assert set(published(prod, "ipfs")) == {"4001/tcp", "4001/udp"}
        create_member(prod)
        trust = caddy_trust(prod)
        client = signed_in(f"https://localhost:{prod.port('caddy', 443)}", verify=trust)
        data = b"<script>alert(document.cookie)</script>" + secrets.token_bytes(1000)
        response = upload(client, "page.html", data)
        assert response.status_code == 302, response.text
        link, cid = CID_LINK.search(client.get(response.headers["location"]).text).groups()
        assert link == f"/ipfs/{cid}?filename=page.html"
        served = client.get(html.unescape(link))
        assert served.content == data
        # Anyone's upload, served on the site's origin, is sandboxed: no script of it runs here.
        assert served.headers["content-security-policy"] == "sandbox"
        # Content addressed: cacheable for ever.
        assert "immutable" in served.headers["cache-control"]


def test_prod_stays_ready_without_its_node_and_not_without_its_database(project):
    """Issue 23: through Caddy, the node stopped: /readyz 200 (the site stays in rotation), the
    upload form says the store is unavailable and keeps no row, /healthz/ipfs 503; started
    again, uploads work; the database stopped: /readyz 503."""
    with running(project.prod) as prod:
        create_member(prod)
        trust = caddy_trust(prod)
        client = signed_in(f"https://localhost:{prod.port('caddy', 443)}", verify=trust)
        assert client.get("/healthz/ipfs").text == "ok\n"

        prod.compose("stop", "ipfs")
        assert (client.get("/readyz").status_code, client.get("/").status_code) == (200, 200)
        failed = upload(client, "away.bin", b"not stored")
        assert failed.status_code == 503
        assert "The file was not stored, the IPFS node at http://ipfs:5001 did not answer" \
            in failed.text
        assert rows(prod) == 0
        check = client.get("/healthz/ipfs")
        assert check.status_code == 503
        assert check.text.startswith("ipfs node at http://ipfs:5001: unreachable ("), check.text

        prod.compose("start", "ipfs")
        eventually(lambda: client.get("/healthz/ipfs").status_code == 200, timeout=90)
        assert upload(client, "back.bin", b"stored now").status_code == 302
        assert rows(prod) == 1

        prod.compose("stop", "db")
        ready = client.get("/readyz")
        assert (ready.status_code, ready.text) == (503, "database unreachable\n")
        assert client.get("/healthz").status_code == 200


def test_a_second_node_pins_the_content_and_serves_it_when_the_first_is_gone(project):
    """README, "Another copy": a node that connects to the project's and pins its CIDs."""
    with running(project.dev) as dev:
        create_member(dev)
        client = signed_in(f"http://127.0.0.1:{dev.port('web', 8000)}")
        data = secrets.token_bytes(100_000)
        page = client.get(upload(client, "kept.bin", data).headers["location"]).text
        cid = CID_LINK.search(page)[2]
        first = json.loads(dev.exec("ipfs", "ipfs", "id").stdout)["ID"]
        network = next(iter(dev.inspect("ipfs")["NetworkSettings"]["Networks"]))
        second = docker("run", "--detach", "--rm", "--network", network,
                        "ipfs/kubo:release").stdout.strip()
        try:
            eventually(lambda: docker("exec", second, "ipfs", "id", check=False).returncode == 0)
            docker("exec", second, "ipfs", "swarm", "connect", f"/dns4/ipfs/tcp/4001/p2p/{first}")
            docker("exec", second, "ipfs", "pin", "add", cid, timeout=120)
            dev.compose("stop", "ipfs")
            copy = subprocess.run(["docker", "exec", second, "ipfs", "cat", cid],
                                  capture_output=True, timeout=60, check=True).stdout
            assert copy == data
        finally:
            docker("rm", "--force", second, check=False)


def test_the_upload_pages_pass_in_a_real_browser(project):
    """Chromium through Caddy: sign in, upload a file with the page's own form, and each upload
    page logs no error (a Content-Security-Policy violation is one), passes axe-core and fits
    a phone's width."""
    with running(project.prod) as prod:
        create_member(prod)
        base = f"https://localhost:{prod.port('caddy', 443)}"
        eventually(lambda: httpx.get(f"{base}/healthz", verify=caddy_trust(prod)).is_success)
        with browser_page() as (page, problems):
            sign_in(page, f"{base}/uploads/new/", "member", PASSWORD)
            assert_page_passes(page)

            def upload_a_file():
                page.goto(f"{base}/uploads/new/")
                page.get_by_label("File").set_input_files(
                    {"name": "hello.txt", "mimeType": "text/plain", "buffer": b"hello, IPFS\n"})
                submit(page, "Upload")

            navigate(page, upload_a_file)
            expect(page.get_by_role("heading", name="hello.txt")).to_be_visible()
            assert "ipfs://bafybei" in page.content()
            assert_page_passes(page)
            navigate(page, lambda: page.goto(f"{base}/uploads/"))
            assert_page_passes(page)
        assert problems == [], problems
