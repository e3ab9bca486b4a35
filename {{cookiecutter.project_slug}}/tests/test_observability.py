"""Error reports and traces (config/observability.py), end to end: the project's gunicorn, started
as the image starts it (config/gunicorn.conf.py), in production mode, sends to small servers in
this test that stand in for Sentry's ingestion API and for an OTLP/HTTP collector. Each test has
a gunicorn of its own, since both SDKs keep their state for the life of the process."""

import contextlib
import gzip
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import brotli
import pytest
from django.db import connection
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

PROJECT = Path(__file__).resolve().parent.parent
SLUG = "{{ cookiecutter.project_slug }}"
REVISION = "0123456789abcdef0123456789abcdef01234567"
OFF = {"SENTRY_DSN": "", "OTEL_EXPORTER_OTLP_ENDPOINT": ""}
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Recorder(ThreadingHTTPServer):
    """An HTTP server on a free port of 127.0.0.1 that keeps every request body it gets
    (decompressed) and answers 200."""

    daemon_threads = True

    def __init__(self):
        self.bodies = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                encoding = self.headers.get("Content-Encoding", "")
                decode = {"gzip": gzip.decompress, "br": brotli.decompress,
                          "deflate": zlib.decompress}.get(encoding, bytes)
                self.server.bodies.append((self.path, decode(body)))
                self.send_response(200)
                self.send_header("Content-Type", self.headers.get("Content-Type", ""))
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}" if "json" in self.headers.get("Content-Type", "")
                                 else b"\n\n")

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def wait_for(self, found, seconds=20):
        deadline = time.monotonic() + seconds
        while not found(self.bodies):
            assert time.monotonic() < deadline, f"nothing as expected in {self.bodies!r}"
            time.sleep(0.1)


class BlackHole:
    """Accepts TCP connections on 127.0.0.1 and never answers: an endpoint that hangs."""

    def __init__(self):
        self.socket = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.socket.getsockname()[1]
        self.connections = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        with contextlib.suppress(OSError):
            while True:
                self.connections.append(self.socket.accept()[0])

    def close(self):
        for accepted in self.connections:
            accepted.close()
        self.socket.close()


def production_environment(database_url, **variables):
    """What the image gets in production (DEBUG off), plus `variables`."""
    return os.environ | OFF | {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "localhost",
        "EMAIL_URL": "smtp://mail.invalid",
        "DATABASE_URL": database_url,
        "REVISION": REVISION,
        "WEB_CONCURRENCY": "1",
    } | variables


@contextlib.contextmanager
def gunicorn(environment, tmp_path):
    """The project's gunicorn, as the image runs it but on a free port of 127.0.0.1; yields a
    function that sends a request and returns (status, headers, body). Stopped with SIGTERM,
    as Docker stops it, so the SDKs flush what they hold."""
    log = tmp_path / "gunicorn.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "config/gunicorn.conf.py",
             "--bind", "127.0.0.1:0", "config.wsgi"],
            cwd=PROJECT, env=environment, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (listening := re.search(r"Listening at: http://127\.0\.0\.1:(\d+)",
                                          log.read_text())):
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        base = f"http://127.0.0.1:{listening[1]}"

        def request(path, data=None, headers=()):
            headers = {"Host": "localhost", "X-Forwarded-Proto": "https"} | dict(headers)
            try:
                with NO_PROXY.open(urllib.request.Request(
                        base + path, data=data, headers=headers), timeout=30) as response:
                    return response.status, response.headers, response.read()
            except urllib.error.HTTPError as error:
                return error.code, error.headers, error.read()

        while request("/healthz")[0] != 200:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield request
    finally:
        server.terminate()
        server.wait(timeout=40)


@pytest.fixture
def database_url(transactional_db):
    """The test database, for a server in another process (committed rows only)."""
    settings = connection.settings_dict
    return (f"postgres://{quote(settings['USER'], safe='')}:"
            f"{quote(settings['PASSWORD'], safe='')}@{settings['HOST'] or 'localhost'}:"
            f"{settings['PORT'] or 5432}/{settings['NAME']}")


@pytest.fixture
def unreachable_database():
    """A database URL whose port refuses connections: every query raises OperationalError."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: refused, and no one else's
        yield f"postgres://app:unused@127.0.0.1:{closed.getsockname()[1]}/app"


def envelope_items(envelope):
    """(item header, payload) pairs of a Sentry envelope: a header line, then items, each a
    header line and a payload (`length` bytes, or up to the next newline)."""
    rest = envelope.partition(b"\n")[2]
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        header = json.loads(line)
        if "length" in header:
            payload, rest = rest[:header["length"]], rest[header["length"] + 1:]
        else:
            payload, _, rest = rest.partition(b"\n")
        yield header, payload


def error_events(bodies):
    return [json.loads(payload) for _, body in bodies
            for header, payload in envelope_items(body) if header.get("type") == "event"]


def sdks_imported(**variables):
    """The SDKs that `import config.wsgi` (what gunicorn loads) imports, with `variables` set."""
    output = subprocess.run(
        [sys.executable, "-c", "import sys, config.wsgi; print('imported:', *sorted("
         "{name.split('.')[0] for name in sys.modules} & {'sentry_sdk', 'opentelemetry'}))"],
        cwd=PROJECT, capture_output=True, text=True, check=True,
        env=production_environment("postgres://app:unused@db.invalid:5432/app", **variables),
    ).stdout
    return re.search(r"^imported:(.*)$", output, re.MULTILINE)[1].split()  # among log lines


def test_off_nothing_is_imported():
    """Without SENTRY_DSN and OTEL_EXPORTER_OTLP_ENDPOINT, neither SDK is even imported; each
    variable imports its own only."""
    assert sdks_imported() == []
    assert sdks_imported(SENTRY_DSN="http://key@127.0.0.1:9/1") == ["sentry_sdk"]
    assert sdks_imported(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9") == ["opentelemetry"]


def test_an_error_is_reported_once_with_its_request_id_and_without_the_password(
        tmp_path, unreachable_database):
    """A sign-in while the database is down fails in the view (500): Sentry gets it once,
    tagged with the request's ID, with the release and environment, and no trace of the
    password that was posted, whatever its field is called."""
    sentry = Recorder()
    password, other_secret = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    request_id = str(uuid.uuid4())
    csrf = secrets.token_hex(16)  # a token this client chose: Django takes it with its cookie
    environment = production_environment(
        unreachable_database, SENTRY_DSN=f"http://publickey@127.0.0.1:{sentry.port}/1")
    with gunicorn(environment, tmp_path) as request:
        status, _, _ = request(
            "/accounts/login/",
            data=f"csrfmiddlewaretoken={csrf}&username=someone&password={password}"
                 f"&new_password1={other_secret}".encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "Cookie": f"csrftoken={csrf}", "Origin": "https://localhost",
                     "X-Request-ID": request_id})
        assert status == 500
        sentry.wait_for(error_events)
    # gunicorn has stopped: whatever the SDK still held has been sent.
    sentry.shutdown()
    (event,) = error_events(sentry.bodies)
    assert event["exception"]["values"][-1]["type"] == "OperationalError"
    tags = dict(event["tags"]) if isinstance(event["tags"], list) else event["tags"]
    assert tags["request_id"] == request_id
    assert event["release"] == REVISION
    assert event["environment"] == "production"
    assert all(path == "/api/1/envelope/" for path, _ in sentry.bodies)
    everything = b"".join(body for _, body in sentry.bodies)
    assert request_id.encode() in everything  # the test can see what it looks for
    assert password.encode() not in everything
    assert other_secret.encode() not in everything
    assert csrf.encode() not in everything  # nor the cookie


def spans_of(bodies):
    """[(service attributes, span)] of every OTLP/HTTP export received."""
    found = []
    for path, body in bodies:
        assert path == "/v1/traces"
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            resource = {attribute.key: attribute.value.string_value
                        for attribute in resource_spans.resource.attributes}
            found += [(resource, span) for scope_spans in resource_spans.scope_spans
                      for span in scope_spans.spans]
    return found


def attributes(span):
    return {attribute.key: attribute.value.string_value for attribute in span.attributes}


def test_a_request_is_traced_with_its_database_queries(tmp_path, database_url):
    """One request to a page that queries the database: a server span, and the query's span as
    its child in the same trace, from a service named after the project, at its revision."""
    collector = Recorder()
    environment = production_environment(
        database_url, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{collector.port}",
        OTEL_BSP_SCHEDULE_DELAY="100")
    with gunicorn(environment, tmp_path) as request:
        assert request("/readyz")[0] == 200

        collector.wait_for(lambda bodies: {Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT}
                           <= {span.kind for _, span in spans_of(bodies)})
    collector.shutdown()
    found = spans_of(collector.bodies)
    servers = [span for _, span in found if span.kind == Span.SPAN_KIND_SERVER
               and "readyz" in span.name]
    assert len(servers) == 1, found
    (server,) = servers
    queries = [span for _, span in found if span.kind == Span.SPAN_KIND_CLIENT
               and span.parent_span_id == server.span_id]
    assert queries, found
    assert all(query.trace_id == server.trace_id for query in queries)
    assert any("SELECT 1" in attributes(query).get("db.statement", "")
               + attributes(query).get("db.query.text", "") for query in queries), queries
    resource = found[0][0]
    assert resource["service.name"] == SLUG
    assert resource["service.version"] == REVISION


def test_endpoints_that_never_answer_slow_no_request(tmp_path, database_url):
    """Sentry and the collector accept connections and never answer: 50 requests, each traced
    and each sampled for Sentry, all succeed, as fast as without them, far below a single
    export's timeout."""
    sentry, collector = BlackHole(), BlackHole()
    environment = production_environment(
        database_url,
        SENTRY_DSN=f"http://publickey@127.0.0.1:{sentry.port}/1", SENTRY_TRACES_SAMPLE_RATE="1",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{collector.port}",
        OTEL_BSP_SCHEDULE_DELAY="50")
    try:
        with gunicorn(environment, tmp_path) as request:
            started = time.monotonic()
            statuses = [request("/readyz")[0] for _ in range(50)]
            elapsed = time.monotonic() - started
            # Both SDKs did try to send (the test can fail): each endpoint got a connection.
            deadline = time.monotonic() + 10
            while not (sentry.connections and collector.connections):
                assert time.monotonic() < deadline, "an SDK never tried to send"
                time.sleep(0.1)
    finally:
        sentry.close()
        collector.close()
    assert statuses == [200] * 50
    # One export may wait 5 s (EXPORT_TIMEOUT), Sentry's 30 s: had any request waited for
    # one, 50 would take minutes. Unhindered, they take well under a second here.
    assert elapsed < 5, f"50 requests took {elapsed:.1f} s"
