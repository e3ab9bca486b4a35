"""Log lines (config/logs.py): in production one JSON object a line, each with its request's ID;
Django's one error line for a failing request, with the traceback; no secret in any line; and
gunicorn's own lines in the same format, with no access log of its own."""

import copy
import json
import logging
import logging.config
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from http.client import HTTPConnection
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.urls import include, path
from django.urls import reverse

from config import logs

PASSWORD = "a-passphrase-only-this-test-knows"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def fails(request):
    raise RuntimeError("the view failed on purpose")


# The project's URLs, and one view that raises (@pytest.mark.urls below).
urlpatterns = [path("fails/", fails), path("", include("config.urls"))]


@pytest.fixture
def json_lines(capfd):
    """What the project's LOGGING writes to stdout as production configures it (DEBUG off:
    JSON), from the real handler and formatter on the process's standard output (file
    descriptor 1); a function that returns the lines so far, parsed (a line that is not JSON
    fails the test). The configuration as it was comes back after."""
    loggers = [logging.getLogger(name) for name in ("", "django", logs.__name__)]
    saved = [(logger, logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    production = logs.logging_config("json", False, settings.LOGGING["root"]["level"],
                                     copy.deepcopy(settings.LOGGING["loggers"]))
    # sys.stdout is pytest's while tests run: the descriptor behind it, which capfd reads.
    production["handlers"]["stdout"]["stream"] = "ext://sys.__stdout__"
    logging.config.dictConfig(production)
    text = []

    def read():
        text.append(capfd.readouterr().out)
        return [json.loads(line) for line in "".join(text).splitlines()]

    yield read
    for logger, handlers, level, propagate in saved:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


@pytest.fixture
def member(django_user_model):
    return django_user_model.objects.create_user("member", "member@example.com", PASSWORD)


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_a_failing_request_logs_one_error_line_with_its_id_and_traceback(client, json_lines):
    client.raise_request_exception = False
    request_id = str(uuid.uuid4())  # as Caddy sends it
    response = client.get("/fails/", headers={"X-Request-ID": request_id})
    assert response.status_code == 500
    assert "X-Request-ID" not in response  # Caddy returns it: one header, not two
    lines = json_lines()
    (error,) = [line for line in lines if line["level"] in {"ERROR", "CRITICAL"}]
    assert error["request_id"] == request_id
    assert (error["logger"], error["status"]) == ("django.request", 500)
    assert (error["method"], error["path"]) == ("GET", "/fails/")
    assert error["exception"].startswith("Traceback (most recent call last):")
    assert "RuntimeError: the view failed on purpose" in error["exception"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", error["time"])
    (request_line,) = [line for line in lines if line["logger"] == "config.logs"]
    assert (request_line["level"], request_line["status"]) == ("INFO", 500)
    assert request_line["request_id"] == request_id


@pytest.mark.django_db
def test_a_request_without_an_id_gets_one_and_the_response_says_it(client, json_lines):
    response = client.get("/")
    assert response.status_code == 200
    assert UUID.fullmatch(response["X-Request-ID"])
    (line,) = json_lines()
    assert line["request_id"] == response["X-Request-ID"]


@pytest.mark.django_db
@pytest.mark.parametrize("given", ["x" * 65, "two words", 'a"quote', "line\nbreak", "ünï"])
def test_a_malformed_id_is_replaced_not_logged(client, json_lines, given):
    """What reaches gunicorn without Caddy in front: no long text, spaces or quotes in logs."""
    response = client.get("/", headers={"X-Request-ID": given})
    assert UUID.fullmatch(response["X-Request-ID"])
    (line,) = json_lines()
    assert line["request_id"] == response["X-Request-ID"]


@pytest.mark.django_db
def test_a_well_formed_id_from_another_proxy_is_kept(client, json_lines):
    given = "Trace-1.2:" + "a" * 54  # 64 characters, the longest kept
    response = client.get("/", headers={"X-Request-ID": given})
    assert "X-Request-ID" not in response
    (line,) = json_lines()
    assert line["request_id"] == given


@pytest.mark.django_db
def test_the_request_line_names_method_path_status_duration_and_the_user(
        client, member, json_lines):
    client.get("/")
    client.force_login(member)
    client.get("/", headers={"X-Request-ID": "one-request"})
    anonymous, signed_in = [line for line in json_lines() if line["logger"] == "config.logs"]
    for line in anonymous, signed_in:
        assert (line["level"], line["logger"]) == ("INFO", "config.logs")
        assert (line["method"], line["path"], line["status"]) == ("GET", "/", 200)
        assert isinstance(line["duration_ms"], float)
        assert line["duration_ms"] >= 0
    assert "user_id" not in anonymous
    assert signed_in["user_id"] == str(member.pk)
    assert len(signed_in["user_id"]) == 22  # the short UUID
    assert signed_in["request_id"] == "one-request"
    assert "member" not in json.dumps(signed_in)  # the user's name or address: never


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_no_secret_is_in_any_line_of_a_sign_in(member, json_lines):
    browser = Client(enforce_csrf_checks=True, raise_request_exception=False)
    form = browser.get(reverse("login")).content.decode()
    csrf_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)[1]
    fields = {"username": "member", "csrfmiddlewaretoken": csrf_token}
    wrong = browser.post(reverse("login"), fields | {"password": PASSWORD + "-wrong"})
    signed_in = browser.post(reverse("login"), fields | {"password": PASSWORD})
    assert (wrong.status_code, signed_in.status_code) == (200, 302)
    browser.get("/")
    # A failure while signed in, with the password in the form: the error line and its traceback.
    csrf_cookie = browser.cookies[settings.CSRF_COOKIE_NAME].value  # a new one at sign-in
    failed = browser.post("/fails/", {"password": PASSWORD, "csrfmiddlewaretoken": csrf_cookie})
    assert failed.status_code == 500
    lines = json_lines()
    assert len(lines) >= 5
    assert any(line.get("user_id") == str(member.pk) for line in lines)
    assert any("exception" in line for line in lines)
    written = json.dumps(lines)
    session = browser.cookies[settings.SESSION_COOKIE_NAME].value
    for secret in (settings.SECRET_KEY, PASSWORD, session, csrf_cookie, csrf_token):
        assert len(secret) >= 20
        assert secret not in written


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(port, url, headers=None):
    connection = HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", url, headers={"Host": "localhost"} | (headers or {}))
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("X-Request-ID")
    finally:
        connection.close()


@pytest.mark.django_db
def test_gunicorn_writes_json_lines_only_and_no_access_log(tmp_path):
    """The production server as the image runs it (config/gunicorn.conf.py), DEBUG off, on the
    test database: every line it and Django print is JSON, and no line is an access log's."""
    database = connection.settings_dict
    port = free_port()
    environ = os.environ | {
        "DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(64), "ALLOWED_HOSTS": "localhost",
        "EMAIL_URL": "smtp://mail.invalid", "LOG_LEVEL": "DEBUG", "LOG_FORMAT": "",
        "WEB_CONCURRENCY": "1", "WEB_THREADS": "2",
        "DATABASE_URL": f"postgres://{quote(database['USER'], safe='')}:"
                        f"{quote(database['PASSWORD'], safe='')}@{database['HOST']}:"
                        f"{database['PORT']}/{database['NAME']}"}
    environ.pop("DJANGO_SETTINGS_MODULE", None)  # the settings' own default, as in the image
    with (tmp_path / "out").open("w+") as out, (tmp_path / "err").open("w+") as err:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "config/gunicorn.conf.py",
             "--bind", f"127.0.0.1:{port}", "config.wsgi"],
            cwd=settings.BASE_DIR, env=environ, stdout=out, stderr=err)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    given = get(port, "/healthz", {"X-Request-ID": "from-the-proxy"})
                    break
                except OSError:
                    assert server.poll() is None, (tmp_path / "err").read_text()
                    assert time.monotonic() < deadline, "gunicorn did not answer in 30 s"
                    time.sleep(0.2)
            generated = get(port, "/healthz")
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        printed = (tmp_path / "out").read_text().splitlines() + \
            (tmp_path / "err").read_text().splitlines()
    assert given == (200, None)  # Caddy's ID: its response carries it already
    assert generated[0] == 200
    assert UUID.fullmatch(generated[1])
    lines = [json.loads(line) for line in printed]  # each one JSON, or this fails
    loggers = {line["logger"] for line in lines}
    assert "gunicorn.error" in loggers  # gunicorn's own lines, as JSON
    assert "gunicorn.access" not in loggers
    assert not any("HTTP/1.1" in line["message"] for line in lines)  # no access log format
    requests = [line for line in lines if line["logger"] == "config.logs"]
    assert [(line["request_id"], line["path"], line["status"]) for line in requests] == [
        ("from-the-proxy", "/healthz", 200), (generated[1], "/healthz", 200)]
