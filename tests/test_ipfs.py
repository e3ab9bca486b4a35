"""The container tier, IPFS (issues 8, 22 and 23): a file uploaded through the page with a real
HTTP client comes back by its CID from the node's gateway, in development (127.0.0.1) and in
production (through Caddy, over HTTPS, on the gateway's own origin, ipfs.localhost); a CID the
node does not hold is 404 at once; a deleted upload is collected and no longer served while
another row with the same bytes keeps them; uploaded scripts, stylesheets and pages never act as
the site in Chromium; a stopped node is a clear error, no row, /healthz/ipfs says so and /readyz
(the database only) does not; the node started again works without restarting web; a second
node keeps the content alive; the upload pages pass in a real browser."""

import base64
import hashlib
import html
import json
import re
import secrets
import socket
import subprocess
import time
from urllib.parse import urljoin

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
# The gateway's own origin in production (Caddyfile), with SITE_ADDRESS=localhost.
GATEWAY = "ipfs.localhost"


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


def create_member(stack, superuser=False):
    stack.exec("web", "python", "manage.py", "shell", "-v", "0", "-c",
               "from django.contrib.auth import get_user_model; get_user_model().objects."
               f"{'create_superuser' if superuser else 'create_user'}('member', "
               f"password={PASSWORD!r})")


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


def gateway_get(stack, path, trust, method="GET"):
    """(response, seconds) of `path` on the gateway's own origin, https://ipfs.localhost, through
    Caddy's published port on 127.0.0.1 (the host's resolver may not know *.localhost)."""
    port = stack.port("caddy", 443)
    started = time.monotonic()
    with httpx.Client(verify=trust, timeout=60) as client:
        response = client.request(method, f"https://127.0.0.1:{port}{path}",
                                  headers={"Host": f"{GATEWAY}:{port}"},
                                  extensions={"sni_hostname": GATEWAY})
    return response, time.monotonic() - started


def unknown_cid():
    """A well-formed CID (version 1, raw, sha2-256) of random bytes: no node has them."""
    digest = hashlib.sha256(secrets.token_bytes(32)).digest()
    multibase = base64.b32encode(bytes([1, 0x55, 0x12, 0x20]) + digest).decode()
    return "b" + multibase.lower().rstrip("=")


def test_prod_serves_uploads_from_their_own_origin_and_nothing_else(project):
    """Issue 22, items 1 and 3: the gateway is https://ipfs.<site>, sandboxed and nosniff; the
    site's /ipfs/ path only redirects there; a CID the node does not hold is 404 at once,
    never looked for on the network."""
    with running(project.prod) as prod:
        # The swarm only: the RPC API and the gateway stay on the compose network.
        assert set(published(prod, "ipfs")) == {"4001/tcp", "4001/udp"}
        create_member(prod)
        trust = caddy_trust(prod)
        port = prod.port("caddy", 443)
        client = signed_in(f"https://localhost:{port}", verify=trust)
        data = b"<script>alert(document.cookie)</script>" + secrets.token_bytes(1000)
        response = upload(client, "page.html", data)
        assert response.status_code == 302, response.text
        link, cid = CID_LINK.search(client.get(response.headers["location"]).text).groups()
        assert link == f"https://{GATEWAY}/ipfs/{cid}?filename=page.html"
        served, _ = gateway_get(prod, f"/ipfs/{cid}?filename=page.html", trust)
        assert served.content == data
        # Anyone's upload is sandboxed (no script of it runs) and taken as the type it is
        # served with, never sniffed.
        assert served.headers["content-security-policy"] == "sandbox"
        assert served.headers["x-content-type-options"] == "nosniff"
        # Content addressed: cacheable for ever.
        assert "immutable" in served.headers["cache-control"]
        # The site's own /ipfs/ path serves nothing: it redirects to the gateway's origin.
        moved = client.get(f"/ipfs/{cid}?filename=page.html")
        assert (moved.status_code, moved.headers["location"]) == (
            301, f"https://{GATEWAY}:{port}/ipfs/{cid}?filename=page.html")
        assert moved.content != data

        # Content the node does not hold: 404 at once (Gateway.NoFetch), never fetched.
        unknown, seconds = gateway_get(prod, f"/ipfs/{unknown_cid()}", trust)
        print(f"time to 404 for an unknown CID: {seconds * 1000:.0f} ms")
        assert unknown.status_code == 404, unknown.text
        assert seconds < 2
        # Nothing but content by CID, read only.
        for method, path in [("GET", "/"), ("GET", f"/ipns/{cid}"), ("POST", f"/ipfs/{cid}"),
                             ("GET", "/api/v0/version")]:
            assert gateway_get(prod, path, trust, method)[0].status_code == 404, (method, path)


def admin_delete(client, slug, upload_url):
    """Delete an upload in the admin, as a staff user would: its page, then its confirmation."""
    pk = upload_url.rstrip("/").rsplit("/", 1)[1]
    path = f"/admin/uploads/upload/{pk}/delete/"
    client.get(path).raise_for_status()
    response = client.post(path, data={"post": "yes",
                                       "csrfmiddlewaretoken": client.cookies["csrftoken"]})
    assert response.status_code == 302, response.text


def test_a_deleted_upload_is_collected_and_no_longer_served(project):
    """Issue 22, item 2: deleting the last row of a CID unpins and collects it, so the gateway
    answers 404; another row with the same bytes keeps them served."""
    with running(project.prod) as prod:
        create_member(prod, superuser=True)
        trust = caddy_trust(prod)
        client = signed_in(f"https://localhost:{prod.port('caddy', 443)}", verify=trust)
        shared, alone = secrets.token_bytes(300_000), secrets.token_bytes(1000)
        pages = {}
        for name, data in [("first.bin", shared), ("second.bin", shared), ("alone.bin", alone)]:
            response = upload(client, name, data)
            assert response.status_code == 302, response.text
            pages[name] = response.headers["location"]
        cids = {name: CID_LINK.search(client.get(page).text)[2] for name, page in pages.items()}
        assert cids["first.bin"] == cids["second.bin"] != cids["alone.bin"]

        def served(name):
            return gateway_get(prod, f"/ipfs/{cids[name]}", trust)[0]

        admin_delete(client, project.slug, pages["first.bin"])
        kept = served("second.bin")  # another row still references the bytes
        assert (kept.status_code, kept.content == shared) == (200, True)
        admin_delete(client, project.slug, pages["alone.bin"])
        assert served("alone.bin").status_code == 404  # gone from the node, not just unpinned
        admin_delete(client, project.slug, pages["second.bin"])
        assert served("second.bin").status_code == 404
        assert rows(prod) == 0


def test_prod_stays_ready_without_its_node_and_not_without_its_database(project):
    """Issue 23: through Caddy, the node stopped: /readyz 200 (the site stays in rotation), the
    upload form says the store is unavailable and keeps no row, /healthz/ipfs 503; started
    again, uploads work; web recreated beside a node that never becomes healthy starts and is
    ready; the database stopped: /readyz 503."""
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

        # A node that never becomes healthy holds back nothing at a deploy: web starts anyway.
        never_healthy = prod.path / "ipfs-never-healthy.yaml"
        never_healthy.write_text("services:\n  ipfs:\n    healthcheck:\n"
                                 "      test: [CMD, 'false']\n      interval: 1s\n"
                                 "      retries: 1\n      start_period: 0s\n")
        files = prod.files
        prod.files = [*files, never_healthy.name]
        try:
            prod.compose("up", "--detach", "--force-recreate", "web")
            eventually(lambda: prod.inspect("ipfs")["State"]["Health"]["Status"] == "unhealthy")
            eventually(lambda: client.get("/readyz").status_code == 200, timeout=90)
        finally:
            prod.files = files

        prod.compose("stop", "db")
        ready = client.get("/readyz")
        assert (ready.status_code, ready.text) == (503, "database unreachable\n")
        assert client.get("/healthz").status_code == 200


def test_a_second_node_pins_the_content_and_serves_it_when_the_first_is_gone(project):
    """docs/ipfs.md: a node that connects to the project's and pins its CIDs."""
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


# An uploaded page that tries to act as the signed-in user: read the site's cookies, read a page
# of the site with them, write a note with them. It reports in its title.
HOSTILE_PAGE = """<!doctype html><title>uploaded</title><script>
(async () => {
  const report = {cookie: document.cookie};
  try {
    const page = await fetch("SITE/uploads/new/", {credentials: "include"});
    report.page = (await page.text()).includes("csrfmiddlewaretoken") ? "read" : "unread";
  } catch (error) { report.page = "refused"; }
  const token = (document.cookie.match(/csrftoken=([^;]+)/) || [])[1] || "";
  try {
    const written = await fetch("SITE/notes/new/", {method: "POST", credentials: "include",
      body: new URLSearchParams({title: "written by an upload", csrfmiddlewaretoken: token})});
    report.note = written.status;
  } catch (error) { report.note = "refused"; }
  document.title = JSON.stringify(report);
})();
</script>"""


def test_uploaded_files_never_act_as_the_site_in_a_real_browser(project):
    """Issue 22, item 3, in Chromium through Caddy: a page of the site that references an
    uploaded script and stylesheet (by the link the site gives, or by the site's own /ipfs/
    path) neither runs nor applies them; an uploaded page runs no script, and even one whose
    script ran could not read the site's cookies or pages, nor write with the user's session."""
    with running(project.prod) as prod:
        create_member(prod)
        port = prod.port("caddy", 443)
        base, trust = f"https://localhost:{port}", caddy_trust(prod)
        client = signed_in(base, verify=trust)
        uploads = {
            "evil.js": b"document.documentElement.dataset.pwned = 'by an uploaded script';",
            "evil.css": b"body { outline: 7px solid rgb(1, 2, 3) !important; }",
            "evil.html": HOSTILE_PAGE.replace("SITE", base).encode(),
        }
        links, cids = {}, {}
        for name, data in uploads.items():
            response = upload(client, name, data)
            assert response.status_code == 302, response.text
            detail = client.get(response.headers["location"]).text
            link, cids[name] = CID_LINK.search(detail).groups()
            # As the browser resolves it on a page of the site, at the port the test publishes.
            links[name] = urljoin(f"{base}/", html.unescape(link)).replace(
                f"https://{GATEWAY}/", f"https://{GATEWAY}:{port}/")

        with browser_page() as (page, _):
            sign_in(page, f"{base}/uploads/new/", "member", PASSWORD)
            navigate(page, lambda: page.goto(f"{base}/uploads/"))
            for script, sheet in [(links["evil.js"], links["evil.css"]),
                                  (f"{base}/ipfs/{cids['evil.js']}?filename=evil.js",
                                   f"{base}/ipfs/{cids['evil.css']}?filename=evil.css")]:
                outcome = page.evaluate("""async ([script, sheet]) => {
                    const load = (element) => new Promise((resolve) => {
                        element.onload = () => resolve("applied");
                        element.onerror = () => resolve("refused");
                        setTimeout(() => resolve("no answer in 10 s"), 10000);
                        document.head.append(element);
                    });
                    const tag = document.createElement("script");
                    tag.src = script;
                    const link = document.createElement("link");
                    link.rel = "stylesheet";
                    link.href = sheet;
                    return {script: await load(tag), sheet: await load(link),
                            pwned: document.documentElement.dataset.pwned || null,
                            outline: getComputedStyle(document.body).outlineColor};
                }""", [script, sheet])
                assert outcome["outline"] != "rgb(1, 2, 3)", (sheet, outcome)
                assert outcome == {"script": "refused", "sheet": "refused", "pwned": None,
                                   "outline": outcome["outline"]}, (script, outcome)

            # The uploaded page as served: its script does not run (sandbox), so it requests
            # nothing of the site.
            asked = []
            page.on("request", lambda request: asked.append(request.url))
            served = navigate(page, lambda: page.goto(links["evil.html"]))
            assert served.status == 200
            assert served.headers["content-security-policy"] == "sandbox"
            page.wait_for_timeout(1000)
            assert [url for url in asked if url.startswith(base)] == [], asked

            # The same page as if its script ran all the same (no sandbox): on its own origin it
            # sees none of the site's cookies, cannot read the site's pages, cannot write.
            page.route(lambda url: url == links["evil.html"], lambda route: route.fulfill(
                status=200, content_type="text/html", body=uploads["evil.html"]))
            navigate(page, lambda: page.goto(links["evil.html"]))
            page.wait_for_function("document.title.startsWith('{')", timeout=15_000)
            report = json.loads(page.title())
            assert report == {"cookie": "", "page": "refused", "note": "refused"}, report
            names = {cookie["name"] for cookie in page.context.cookies(links["evil.html"])}
            assert names == set(), names  # the site's cookies are the site's host's only
            assert {"sessionid", "csrftoken"} <= {
                cookie["name"] for cookie in page.context.cookies(base)}
        written = prod.exec("web", "python", "manage.py", "shell", "-v", "0", "-c",
                            "print(Note.objects.filter(title='written by an upload').count())")
        assert written.stdout.strip() == "0"
