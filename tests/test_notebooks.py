"""The notebooks option in containers: the notebook service starts JupyterLab on 127.0.0.1 only,
behind the token from .env, with kernels that query the ORM at once; Jupyter is in the notebook
image and in no other, and the production image is the same with the option as without it."""

import http.client
import json
import secrets
import time
import uuid

import pytest
import websocket

from test_containers import Project, docker, fetch

# On the default project's worker: its dev and prod images are built there already.
pytestmark = pytest.mark.xdist_group("containers-default")


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    """The default project (notebooks on, its notebook image built too) and one without them."""
    root = tmp_path_factory.mktemp("notebooks")
    default, plain = Project({}, root / "default"), Project({"notebooks": "no"}, root / "plain")
    default.dev.env |= {"NOTEBOOK_PORT": "0"}
    # Names apart from test_containers.py's stacks (and from each other, for the same answers
    # but one): projects that must not share containers or images.
    for project, suffix in ((default, "-notebooks"), (plain, "-plain")):
        for stack in (project.dev, project.prod):
            stack.name += suffix
    try:
        default.build()
        started = time.monotonic()
        default.dev.compose("build", "notebook", timeout=1200)
        print(f"notebook image built in {time.monotonic() - started:.0f} s")
        plain.prod.compose("build", timeout=1200)
        yield default, plain
    finally:
        default.remove_images()
        plain.remove_images()


def image_size(image):
    return json.loads(docker("image", "inspect", image).stdout)[0]["Size"]


def image_id(image):
    return docker("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()


def in_image(image, *command, check=True):
    return docker("run", "--rm", "--entrypoint", command[0], image, *command[1:], check=check)


def test_jupyter_is_in_the_notebook_image_only(projects):
    default, _ = projects
    notebook, dev, prod = (default.dev.image("notebook"), default.dev.image("web"),
                           default.prod.image("web"))
    in_image(notebook, "python", "-c", "import jupyter_server, nbclient, pandas")
    for image in (dev, prod):
        refused = in_image(image, "python", "-c", "import jupyter_server", check=False)
        assert refused.returncode != 0 and "No module named 'jupyter_server'" in refused.stderr
    dev_size, notebook_size = image_size(dev), image_size(notebook)
    assert notebook_size > dev_size
    print(f"dev {dev_size / 1e6:.0f} MB, notebook {notebook_size / 1e6:.0f} MB "
          f"(+{(notebook_size - dev_size) / 1e6:.0f} MB)")


def test_the_prod_image_is_the_same_with_notebooks_or_without(projects):
    default, plain = projects
    listing = ("import importlib.metadata as m; "
               "print(sorted(f'{d.name}=={d.version}' for d in m.distributions()))")
    with_option, without = default.prod.image("web"), plain.prod.image("web")
    assert image_id(with_option) != image_id(without)  # two builds: uv.lock differs
    assert in_image(with_option, "python", "-c", listing).stdout == \
        in_image(without, "python", "-c", listing).stdout
    assert in_image(with_option, "du", "-sb", "/venv").stdout.split()[0] == \
        in_image(without, "du", "-sb", "/venv").stdout.split()[0]
    assert in_image(with_option, "ls", "/app").stdout == in_image(without, "ls", "/app").stdout
    print(f"prod image: {image_size(with_option)} bytes with notebooks, "
          f"{image_size(without)} without")


def execute_in_kernel(port, token, code):
    """Start a kernel through the server's REST API, run `code` over its websocket channels,
    and return what it printed (or raise with the kernel's error)."""
    connection_headers = {"Authorization": f"token {token}"}
    status, _, body = fetch_json(port, "POST", "/api/kernels", connection_headers)
    assert status == 201, body
    kernel = json.loads(body)["id"]
    channel = websocket.create_connection(
        f"ws://127.0.0.1:{port}/api/kernels/{kernel}/channels?session_id={uuid.uuid4()}",
        header=[f"Authorization: token {token}"], timeout=60)
    try:
        message_id = uuid.uuid4().hex
        channel.send(json.dumps({
            "header": {"msg_id": message_id, "msg_type": "execute_request", "username": "test",
                       "session": uuid.uuid4().hex, "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }))
        printed = []
        while True:
            message = json.loads(channel.recv())
            if message["parent_header"].get("msg_id") != message_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                printed.append(content["text"])
            elif kind == "error":
                pytest.fail(f"the kernel raised {content['ename']}: {content['evalue']}")
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(printed)
    finally:
        channel.close()


def fetch_json(port, method, path, headers):
    """(status, headers, body) of a JSON request to the server at 127.0.0.1:port."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body="{}", headers={
            "Host": f"127.0.0.1:{port}", "Content-Type": "application/json", **headers})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


def test_the_notebook_service_is_local_guarded_and_has_the_models(projects):
    default, _ = projects
    stack, token = default.dev, default.dev_values["JUPYTER_TOKEN"]
    assert len(token) >= 32
    started = time.monotonic()
    try:
        stack.compose("up", "--detach", "--wait", "--wait-timeout", "300", "notebook",
                      timeout=400)
        ready = time.monotonic() - started
        bindings = stack.inspect("notebook")["HostConfig"]["PortBindings"]
        assert [binding["HostIp"] for binding in bindings["8888/tcp"]] == ["127.0.0.1"]
        port = stack.port("notebook", 8888)
        # Without the token: refused (the API), or sent to the login page (the UI).
        assert fetch_json(port, "GET", "/api/kernels", {})[0] == 403
        status, headers, _ = fetch(port, "/lab")
        assert status == 302 and headers["location"].startswith("/login")
        wrong = fetch_json(port, "GET", "/api/kernels", {"Authorization": "token wrong"})
        assert wrong[0] == 403
        # With it: a kernel that writes and reads through the ORM, in Jupyter's event loop.
        name = f"from-a-notebook-{secrets.token_hex(4)}"
        printed = execute_in_kernel(port, token, (
            "import asyncio; asyncio.get_running_loop()  # cells run inside the loop\n"
            f"from {default.slug}.notes.models import Note\n"
            f"Note.objects.create(title={name!r})\n"
            f"print(Note.objects.filter(title={name!r}).count(), 'note')"))
        kernel_ready = time.monotonic() - started
        assert printed == "1 note\n"
        check = ("from django.apps import apps; "
                 f"print(apps.get_model('notes', 'Note').objects.get(title={name!r}))")
        assert stack.compose("run", "--rm", "--no-deps", "web", "python", "manage.py", "shell",
                             "-v", "0", "-c", check).stdout.strip() == name
        print(f"notebook service healthy {ready:.1f} s after `up`, a kernel answered after "
              f"{kernel_ready:.1f} s")
    finally:
        stack.down(profiles=["notebook"])
