"""Print what observability costs the default project's production web container: requests per
second, latency and memory with JSON logs, error reports (Sentry) and traces (OpenTelemetry) each
on and off.

    uv run python bench/observability.py [--seconds 10] [--rounds 3]

Needs Docker with BuildKit and Compose v2, and wrk (Debian: `apt-get install wrk`). It builds the
prod image of a freshly generated project (no IPFS, no notebooks: neither is on the page) and
starts its deploy/compose.yaml stack's database, migrations and web, plus a sink: a small HTTP
server in a python:3.13-slim container on the stack's network that answers 200 to anything,
standing in for Sentry's ingestion API and an OTLP/HTTP collector. For each configuration only
the web container is replaced, with the variables that turn one thing on; rounds interleave the
configurations, so that load from outside falls on each alike, and the figures are medians over
rounds. The load is `wrk -t2 -c32` on GET /notes/ (a template and a database query; 50 notes),
straight to gunicorn with `X-Forwarded-Proto: https` as Caddy sends it, after a 2-second warm-up,
from this machine to 127.0.0.1 only. JSON logs are measured only when the project has the
LOG_FORMAT variable (json|text); the other rows then log as text. Everything it creates is
removed at the end.
"""

import argparse
import http.client
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

# bench/containers.py and bench/serving.py, beside this
from containers import LOOPBACK_PORTS, write_production_env
from serving import PROXIED, Stack, median, memory_mib, run, wrk

TEMPLATE = Path(__file__).resolve().parent.parent
PAGE = "/notes/"
SINK = """
import http.server, sys

class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        print(self.path, flush=True)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Sink).serve_forever()
"""
SENTRY = {"SENTRY_DSN": "http://publickey@sink:8080/1"}
OTEL = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://sink:8080"}


def configurations(with_log_format):
    """{name: web's extra environment}: everything off, then each thing on alone."""
    text = {"LOG_FORMAT": "text"} if with_log_format else {}
    found = {"all off": text}
    if with_log_format:
        found["JSON logs"] = {"LOG_FORMAT": "json"}
    found["Sentry (errors only)"] = text | SENTRY
    found["Sentry, traces 100%"] = text | SENTRY | {"SENTRY_TRACES_SAMPLE_RATE": "1"}
    found["OpenTelemetry traces"] = text | OTEL
    return found


def override_files(scratch, configurations):
    """The sink's compose file, and {name: compose override that runs web so}."""
    script = Path(scratch) / "sink.py"
    script.write_text(SINK)
    sink = Path(scratch) / "compose-sink.yaml"
    sink.write_text(json.dumps({"services": {"sink": {
        "image": "python:3.13-slim", "command": ["python", "/sink.py"],
        "volumes": [f"{script}:/sink.py:ro"], "read_only": True}}}))
    files = {}
    for number, (name, environment) in enumerate(configurations.items()):
        override = Path(scratch) / f"compose-{number}.yaml"
        override.write_text(json.dumps({"services": {"web": {
            "ports": ["127.0.0.1::8000"], "environment": environment}}}))
        files[name] = [sink, override]
    return sink, files


def measure(stack, files, seconds):
    stack("up", "--detach", "--wait", "--no-deps", "web", files=files)
    container = stack.container("web", files=files)
    time.sleep(3)  # idle: the workers have started and settled
    idle = memory_mib(container)
    port = stack.port("web", 8000, files)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", PAGE, headers={"Host": "localhost", **PROXIED})
    status = connection.getresponse().status
    connection.close()
    if status != 200:
        logs = run(["docker", "logs", "--tail", "40", container], ".").stderr
        sys.exit(f"GET {PAGE} answered {status}, not the page:\n{logs}")
    load = wrk(f"http://127.0.0.1:{port}{PAGE}", seconds, PROXIED)
    return {"load": load, "idle": idle, "loaded": memory_mib(container)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="of load per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="of every configuration")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        run([sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), "-o", scratch,
             "ipfs=no", "notebooks=no"], cwd=scratch)
        project = Path(scratch) / "my_project"
        write_production_env(project)
        with_log_format = "LOG_FORMAT" in (project / "config" / "env.py").read_text()
        chosen = configurations(with_log_format)
        results = {name: [] for name in chosen}
        env = dict(os.environ) | LOOPBACK_PORTS | {"HOST_UID": str(os.getuid()),
                                                   "HOST_GID": str(os.getgid())}
        stack = Stack(project, env)
        sink, overrides = override_files(scratch, chosen)
        try:
            stack("build", "web")
            stack("up", "--detach", "--wait", "db", "sink", files=[sink])
            stack("run", "--rm", "--no-deps", "migrate", files=[sink])
            stack("exec", "-T", "db", "psql", "-q", "-U", "my_project", "-d", "my_project", "-c",
                  "INSERT INTO notes_note (id, title, body, created) SELECT gen_random_uuid(),"
                  " 'Note ' || n, 'Text', now() FROM generate_series(1, 50) n",
                  files=[sink])
            for _ in range(arguments.rounds):
                for name, files in overrides.items():
                    results[name].append(measure(stack, files, arguments.seconds))
            received = re.findall(r"/api/1/envelope/|/v1/traces", stack(
                "logs", "--no-color", "--no-log-prefix", "sink", files=[sink]).stdout)
        finally:
            stack("down", "--volumes", "--remove-orphans", "--rmi", "local", files=[sink],
                  check=False)

    print(f"observability's cost in the default project ({os.cpu_count()} CPUs; GET {PAGE} "
          f"straight to gunicorn, wrk -t2 -c32 {arguments.seconds} s; medians of "
          f"{arguments.rounds} rounds, interleaved):")
    if not with_log_format:
        print("  (this project has no LOG_FORMAT variable: JSON logs not measured)")
    baseline = median(results["all off"], "load", "rps")
    print(f"  {'configuration':24} {'req/s':>7} {'vs off':>7} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'errors':>6} {'idle MiB':>8} {'loaded MiB':>10}")
    for name, rounds in results.items():
        rps = median(rounds, "load", "rps")
        print(f"  {name:24} {rps:7.0f} {rps / baseline:7.2f} {median(rounds, 'load', 'p50'):7.1f} "
              f"{median(rounds, 'load', 'p99'):7.1f} "
              f"{max(r['load']['errors'] for r in rounds):6d} "
              f"{median(rounds, 'idle'):8.1f} {median(rounds, 'loaded'):10.1f}")
    paths = {path: received.count(path) for path in sorted(set(received))}
    print(f"  the sink received: {paths or 'nothing'}")


if __name__ == "__main__":
    main()
