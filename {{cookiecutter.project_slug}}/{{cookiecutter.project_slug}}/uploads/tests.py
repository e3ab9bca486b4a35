"""Files on IPFS, against a real Kubo node: IPFS_API_URL (compose's `ipfs` service, or one
you start: docs/ipfs.md). The `ipfs_node` fixture is in conftest.py."""

import http.server
import secrets
import socket
import threading
from urllib.parse import urlencode

import httpx
import hypothesis
import pytest
from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from config import env
from {{ cookiecutter.project_slug }}.uploads.models import Upload
from {{ cookiecutter.project_slug }}.uploads.storage import ADD_PARAMETERS, KuboStorage, ipfs_storage


def only_hash(storage, data):
    """The CID the node computes for `data` without storing it."""
    response = httpx.post(f"{storage.api_url}/api/v0/add",
                          params=ADD_PARAMETERS | {"only-hash": "true"},
                          files={"file": ("data", data)})
    response.raise_for_status()
    return response.json()["Hash"]


def pinned(storage, cid):
    response = httpx.post(f"{storage.api_url}/api/v0/pin/ls",
                          params={"arg": cid, "type": "recursive"})
    return response.status_code == 200


@pytest.fixture
def storage():
    return ipfs_storage()


def recursive_pins(api_url):
    response = httpx.post(f"{api_url}/api/v0/pin/ls", params={"type": "recursive"})
    response.raise_for_status()
    return set(response.json()["Keys"])


@pytest.fixture(autouse=True)
def _the_nodes_pins_are_left_as_they_were(ipfs_node):
    """The node may be your development node: what a test pins, it unpins."""
    api_url = ipfs_node.api_url
    before = recursive_pins(api_url)
    yield
    for cid in recursive_pins(api_url) - before:
        httpx.post(f"{api_url}/api/v0/pin/rm", params={"arg": cid}).raise_for_status()


@pytest.fixture
def member(django_user_model, client):
    user = django_user_model.objects.create_user("member", "member@example.com", "a-long-passphrase")
    client.force_login(user)
    return user


# Files around the 256 KiB at which the node cuts a file into blocks, built from a short drawn
# pattern: Hypothesis refuses to draw that much data directly (HealthCheck.data_too_large).
around_a_block = st.builds(lambda pattern, size: (pattern * (size // len(pattern) + 1))[:size],
                           st.binary(min_size=1, max_size=64), st.integers(262_000, 270_000))


# Small files and files around a block. Few examples, whatever the profile: each is six round
# trips to the node.
@hypothesis.settings(max_examples=25)
@given(data=st.binary(max_size=1024) | around_a_block,
       name=st.from_regex(r"\A[a-z0-9_]{1,40}\.bin\Z"))
def test_bytes_saved_come_back_identical_under_the_nodes_own_cid(data, name):
    storage = ipfs_storage()
    stored = storage.save(name, ContentFile(data))
    cid, _, kept = stored.partition("/")
    assert kept == name
    assert cid == only_hash(storage, data)
    assert storage.exists(stored)
    assert pinned(storage, cid)
    with storage.open(stored) as file:
        assert file.read() == data
    assert storage.size(stored) == len(data)
    assert storage.url(stored).endswith(f"/ipfs/{cid}?filename={name}")


def test_names_that_are_not_cids_never_reach_the_node(storage):
    for name in ("report.pdf", "../etc/passwd", "QmShort/x", "bafybeiUPPERCASE/x"):
        assert not storage.exists(name)
        with pytest.raises(ValueError, match="does not start with a CID"):
            storage.open(name)


@pytest.mark.django_db
def test_the_upload_page_stores_the_file_and_shows_its_cid_link_and_uri(client, member, storage):
    data = b"%PDF-1.7 a page of text\n"
    response = client.post(reverse("upload-create"),
                           {"file": SimpleUploadedFile("report.pdf", data, "application/pdf")})
    upload = Upload.objects.get()
    assert response["Location"] == upload.get_absolute_url()
    assert (upload.cid, upload.size, upload.content_type, upload.uploaded_by) == (
        only_hash(storage, data), len(data), "application/pdf", member)
    page = client.get(upload.get_absolute_url()).content.decode()
    assert f"ipfs://{upload.cid}" in page
    assert f'href="{storage.gateway_url}/ipfs/{upload.cid}?filename=report.pdf"' in page
    assert 'enctype="multipart/form-data"' in client.get(reverse("upload-create")).content.decode()
    assert "report.pdf" in client.get(reverse("upload-list")).content.decode()


@pytest.mark.django_db
def test_signing_in_comes_first(client):
    response = client.get(reverse("upload-create"))
    assert response["Location"].startswith(reverse("login"))


def held(storage, cid):
    """Whether the node has the content itself: one that has not looks for it on the network,
    where nobody has these random bytes, until the call's timeout."""
    response = httpx.post(f"{storage.api_url}/api/v0/cat", params={"arg": cid, "timeout": "2s"},
                          timeout=30)
    if response.status_code == 500 and "deadline exceeded" in response.json()["Message"]:
        return False
    response.raise_for_status()
    return True


@pytest.mark.django_db
def test_the_same_bytes_twice_share_one_cid_kept_until_the_last_row_goes(
        client, member, storage, django_capture_on_commit_callbacks):
    data = secrets.token_bytes(300_000)  # more than one block, shared with nothing else
    for name in ("first.bin", "second.bin"):
        client.post(reverse("upload-create"), {"file": SimpleUploadedFile(name, data)})
    first, second = Upload.objects.order_by("created")
    assert first.cid == second.cid
    assert pinned(storage, first.cid)
    with django_capture_on_commit_callbacks(execute=True):
        first.delete()
    assert pinned(storage, second.cid)
    assert held(storage, second.cid)
    with django_capture_on_commit_callbacks(execute=True):
        Upload.objects.all().delete()  # the admin's bulk delete
    assert not pinned(storage, second.cid)
    # Collected: gone from the node, not just unpinned.
    assert not held(storage, second.cid)


def test_deleting_a_file_collects_it_and_keeps_what_is_pinned(storage):
    kept, dropped = (storage.save(name, ContentFile(secrets.token_bytes(1000)))
                     for name in ("kept.bin", "dropped.bin"))
    storage.delete(dropped)
    assert not storage.exists(dropped)
    assert not held(storage, dropped.partition("/")[0])
    assert held(storage, kept.partition("/")[0])
    storage.delete(dropped)  # again: nothing left to do, no error


def release_on_its_own_connection(cid):
    try:
        Upload.release(cid)
    finally:
        connection.close()  # this thread's


@pytest.mark.django_db(transaction=True)
def test_a_release_waits_for_an_upload_of_the_same_bytes_in_flight(storage):
    """The last row of a CID goes while another upload of the same bytes is being saved: the
    release counts the rows only once that upload's row is committed, so it keeps the pin."""
    data = secrets.token_bytes(1000)
    gone = Upload(file=SimpleUploadedFile("gone.bin", data))
    gone.save()
    gone.delete()  # committed at once (no transaction): released, the content collected
    assert not pinned(storage, gone.cid)
    with transaction.atomic():
        again = Upload(file=SimpleUploadedFile("again.bin", data))
        again.save()  # pinned; its row not committed yet
        releasing = threading.Thread(target=release_on_its_own_connection, args=[again.cid])
        releasing.start()
        releasing.join(timeout=1)
        assert releasing.is_alive()  # waiting for the upload's transaction
    releasing.join(timeout=30)
    assert not releasing.is_alive()
    assert pinned(storage, again.cid)
    assert held(storage, again.cid)


@pytest.mark.django_db
def test_a_file_over_the_limit_is_a_form_error_and_nothing_is_stored(client, member, storage,
                                                                     settings):
    settings.ENV = settings.ENV | {"IPFS_MAX_UPLOAD_SIZE": 1000}
    data = b"x" * 1001
    response = client.post(reverse("upload-create"), {"file": SimpleUploadedFile("big.bin", data)})
    assert response.status_code == 200
    assert "This file is 1001\xa0bytes; the largest accepted is 1000\xa0bytes." in \
        response.content.decode()
    assert not Upload.objects.exists()
    assert not pinned(storage, only_hash(storage, data))


@pytest.mark.django_db
def test_an_upload_far_over_the_limit_is_refused_before_it_is_read(client, member, settings,
                                                                   tmp_path):
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)  # where Django would write the file it reads
    settings.ENV = settings.ENV | {"IPFS_MAX_UPLOAD_SIZE": 1024 * 1024}
    response = client.post(reverse("upload-create"), {
        "file": SimpleUploadedFile("big.bin", b"x" * (3 * 1024 * 1024))})
    assert response.status_code == 400
    assert list(tmp_path.iterdir()) == []
    assert not Upload.objects.exists()


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # free again once closed: nothing listens there


@pytest.fixture
def silent_port():
    """A port that takes connections (the kernel's backlog) and never answers: a node that hangs."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


@pytest.fixture(params=["down", "slow"])
def failing_node(request, settings, storage):
    port = closed_port() if request.param == "down" else request.getfixturevalue("silent_port")
    settings.STORAGES = settings.STORAGES | {"ipfs": {
        "BACKEND": settings.STORAGES["ipfs"]["BACKEND"],
        "OPTIONS": {"api_url": f"http://127.0.0.1:{port}", "gateway_url": storage.gateway_url,
                    "timeout": 1}}}
    return request.param


@pytest.mark.django_db
def test_a_node_down_or_slow_is_a_clear_error_and_no_row(client, member, failing_node):
    response = client.post(reverse("upload-create"),
                           {"file": SimpleUploadedFile("notes.txt", b"kept nowhere")})
    assert response.status_code == 503
    page = response.content.decode()
    assert "The file was not stored, the IPFS node at http://127.0.0.1:" in page
    assert "Nothing was saved" in page
    assert not Upload.objects.exists()
    # The site stays in rotation (only uploads need the node); the node's own check says why.
    assert client.get(reverse("readyz")).content == b"ok\n"
    assert client.get(reverse("upload-list")).status_code == 200
    check = client.get(reverse("healthz-ipfs"))
    assert check.status_code == 503
    assert check.content.decode().startswith("ipfs node at http://127.0.0.1:")
    assert {"down": "Connection refused", "slow": "no answer within 1 s"}[failing_node] in \
        check.content.decode()


@pytest.mark.django_db
def test_readyz_and_the_ipfs_check_answer_200_while_the_node_answers(client):
    assert client.get(reverse("readyz")).content == b"ok\n"
    assert client.get(reverse("healthz-ipfs")).content == b"ok\n"
    # The home page's probe card names both checks.
    home = client.get(reverse("home")).content.decode()
    assert f'href="{reverse("readyz")}"' in home
    assert f'href="{reverse("healthz-ipfs")}"' in home


@pytest.mark.parametrize(("suffix", "problem"), [
    ("/not-the-api", "answered 404"),  # a wrong path: something answers, not the RPC API
])
def test_the_ipfs_check_says_what_answered_wrongly(client, settings, storage, suffix, problem):
    settings.STORAGES = settings.STORAGES | {"ipfs": {
        "BACKEND": settings.STORAGES["ipfs"]["BACKEND"],
        "OPTIONS": {"api_url": storage.api_url + suffix, "gateway_url": storage.gateway_url}}}
    check = client.get(reverse("healthz-ipfs"))
    assert check.status_code == 503
    assert problem in check.content.decode()


def test_the_ipfs_check_names_an_unknown_host(client, settings, storage):
    settings.STORAGES = settings.STORAGES | {"ipfs": {
        "BACKEND": settings.STORAGES["ipfs"]["BACKEND"],
        "OPTIONS": {"api_url": "http://no-such-node.invalid:5001",
                    "gateway_url": storage.gateway_url}}}
    check = client.get(reverse("healthz-ipfs"))
    assert check.status_code == 503
    assert check.content.decode().startswith(
        "ipfs node at http://no-such-node.invalid:5001: unreachable (")


@pytest.fixture
def recording_node():
    """A server in front of nothing that records the headers of each request and answers as
    Kubo's `version` does: where IPFS_API_AUTH goes, as a proxy or pinning service sees it."""
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the name http.server calls
            seen.append(dict(self.headers))
            body = b'{"Version": "0.22.0"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *arguments):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_ipfs_api_auth_is_sent_with_every_call(recording_node):
    url, seen = recording_node
    assert KuboStorage(api_url=url, gateway_url="/", auth="Bearer s3cret").problem() is None
    assert KuboStorage(api_url=url, gateway_url="/").problem() is None
    assert [headers.get("Authorization") for headers in seen] == ["Bearer s3cret", None]


def test_the_storage_is_usable_on_its_own(storage):
    alone = KuboStorage(api_url=storage.api_url, gateway_url="https://example.com/")
    name = alone.save("hello.txt", ContentFile(b"hello"))
    assert alone.url(name) == f"https://example.com/ipfs/{name.partition('/')[0]}?filename=hello.txt"


@pytest.mark.parametrize(("url", "allowed"), [
    ("http://ipfs:5001", True), ("http://10.0.0.5:5001", True), ("http://127.0.0.1:5001", True),
    ("http://kubo.internal:5001", True), ("http://ipfs.default.svc:5001", True),
    ("https://ipfs.example.com", False), ("http://8.8.8.8:5001", False),
    # A node elsewhere (docs/ipfs.md#an-ipfs-node-elsewhere): over https with a credential only.
    ("https://ipfs.example.com|Bearer k", True), ("http://ipfs.example.com|Bearer k", False),
])
def test_production_refuses_a_public_rpc_address(url, allowed):
    url, _, auth = url.partition("|")
    production = {"SECRET_KEY": "k" * 40 + "0123456789abcdef", "ALLOWED_HOSTS": "example.com",
                  "DATABASE_URL": "postgres://u:p@db:5432/d", "EMAIL_URL": "smtp://mail.example.com",
                  "IPFS_GATEWAY_URL": "https://example.com", "IPFS_API_URL": url,
                  "IPFS_API_AUTH": auth}
    if allowed:
        assert env.load(production)["IPFS_API_URL"] == url
    else:
        with pytest.raises(env.InvalidEnvironment, match="IPFS_API_URL: a public address"):
            env.load(production)


def test_backups_add_files_back_with_the_apps_parameters():
    """deploy/scripts/backup.sh adds a backup's files back to a new node: with other parameters
    they would get other CIDs, and the restored uploads would point at nothing."""
    script = (django_settings.BASE_DIR / "deploy/scripts/backup.sh").read_text()
    assert f'add_parameters="{urlencode(ADD_PARAMETERS)}"' in script
