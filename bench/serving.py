"""Print how the default project's production stack serves: requests per second, latency and
errors under load, and the web container's memory, for the shipped gunicorn configuration and
the candidates it was chosen from; straight to gunicorn and through Caddy over HTTPS.

    uv run python bench/serving.py [--seconds 10] [--rounds 2]

Needs Docker with BuildKit and Compose v2, and wrk (Debian: `apt-get install wrk`). It builds the
prod image of a freshly generated project, starts its deploy/compose.yaml stack (PostgreSQL,
migrations, gunicorn, Caddy) with SITE_ADDRESS=localhost, and for each configuration replaces
only the web container: the configuration is a file that runs the project's
config/gunicorn.conf.py and
then overrides a few settings, mounted into the container. Rounds interleave the configurations,
so that load from outside falls on each alike; the figures are medians over rounds. The load is
`wrk -t2 -c32` on GET /admin/login/ (a template, a CSRF cookie, no database query), after a
2-second warm-up, from this machine to 127.0.0.1 only. Straight to gunicorn, requests carry
`X-Forwarded-Proto: https` as Caddy's do: without it Django answers every one with a cheap
redirect to HTTPS, and a benchmark measures that instead of the page. Then, with the shipped
gunicorn configuration, Caddy itself: the shipped Caddyfile and variants without parts of it,
each as a ratio to straight-to-gunicorn measured in the same round, in requests per second and
in the CPU time the web and Caddy containers spend per request (their cgroups'): wrk shares the
CPUs here, so the second ratio is the one that holds when the clients are elsewhere. Everything
it creates is removed at the end.
"""

import argparse
import http.client
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# bench/containers.py, beside this
from containers import LOOPBACK_PORTS, spread, write_production_env

TEMPLATE = Path(__file__).resolve().parent.parent
RUN = f"bench-{os.getpid()}-{secrets.token_hex(3)}"
SHIPPED = "shipped"
PROXIED = {"X-Forwarded-Proto": "https"}  # what Caddy tells gunicorn
# name: settings layered over the project's config/gunicorn.conf.py ("" = the project's own).
CANDIDATES = {
    SHIPPED: "",
    "before: 5 sync, no preload, access log": (
        "worker_class = 'sync'\nworkers = 5\nthreads = 1\npreload_app = False\naccesslog = '-'"),
    "4 sync, preload": "worker_class = 'sync'\nworkers = 4\nthreads = 1\npreload_app = True",
    "4 sync, preload, access log": (
        "worker_class = 'sync'\nworkers = 4\nthreads = 1\npreload_app = True\naccesslog = '-'"),
    "2 gthread x 4, preload": "worker_class = 'gthread'\nworkers = 2\nthreads = 4\n"
                              "preload_app = True",
    "3 gthread x 4, preload": "worker_class = 'gthread'\nworkers = 3\nthreads = 4\n"
                              "preload_app = True",
}

# name: (what it does to the shipped Caddyfile, environment for Caddy), with the shipped gunicorn.
CADDY_CANDIDATES = {
    "shipped Caddyfile": (lambda caddyfile: caddyfile, {}),
    "without the access log": (
        lambda caddyfile: re.sub(r"\n\tlog \{.*?\n\t\}\n\tlog_append [^\n]*", "", caddyfile,
                                 flags=re.DOTALL), {}),
    "without encode": (lambda caddyfile: caddyfile.replace("\tencode zstd gzip\n", ""), {}),
    "Go GC at 400%": (lambda caddyfile: caddyfile, {"GOGC": "400"}),
}


def run(command, cwd, env=None, check=True):
    result = subprocess.run(command, cwd=cwd, env=env, text=True, capture_output=True,
                            check=False)
    if check and result.returncode != 0:
        sys.exit(f"{' '.join(map(str, command))} exited {result.returncode}\n"
                 f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def memory_mib(container):
    """The container's memory use as the engine reports it (cgroup, less the page cache)."""
    usage = run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", container],
                cwd=".").stdout.split("/")[0].strip()
    number, unit = re.fullmatch(r"([\d.]+)\s*([KMG]i?B)", usage).groups()
    return float(number) * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "kB": 1 / 1024,
                            "MB": 1, "GB": 1024}[unit]


def cpu_seconds(container):
    """CPU time the container's processes have used, from its cgroup (v2, or v1's cpuacct)."""
    usage = run(["docker", "exec", container, "sh", "-c", "cat /sys/fs/cgroup/cpu.stat "
                 "2>/dev/null || cat /sys/fs/cgroup/cpuacct/cpuacct.usage"], ".").stdout
    if match := re.search(r"^usage_usec (\d+)$", usage, re.M):
        return int(match[1]) / 1e6
    return int(usage) / 1e9


def wrk_with_cpu(url, seconds, containers, headers=None):
    """wrk(), and the CPU milliseconds per request the containers used meanwhile (wrk() loads
    for `seconds` after a 2-second warm-up, both at about the measured rate): {container: ms}."""
    before = {container: cpu_seconds(container) for container in containers}
    load = wrk(url, seconds, headers)
    requests = load["rps"] * (seconds + 2)
    return load, {container: (cpu_seconds(container) - before[container]) * 1000 / requests
                  for container in containers}


def wrk(url, seconds, headers=None):
    """{rps, p50, p99 (ms), errors} of `wrk -t2 -c32 --latency` against url, after a warm-up,
    with Host: localhost and the headers given ({name: value})."""
    command = ["wrk", "-t2", "-c32", "--latency", "--timeout", "10s",
               *[option for name, value in {"Host": "localhost", **(headers or {})}.items()
                 for option in ("-H", f"{name}: {value}")]]
    run([*command, "-d2s", url], cwd=".")
    output = run([*command, f"-d{seconds}s", url], cwd=".").stdout

    def milliseconds(label):
        value, unit = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1]),
            "p50": milliseconds("50"), "p99": milliseconds("99"),
            "errors": errors + (int(non_2xx[1]) if non_2xx else 0)}


class Stack:
    def __init__(self, project, env):
        self.project, self.env = project, env
        self.compose = ["docker", "compose", "-p", f"shipshape-{RUN}", "-f", "deploy/compose.yaml"]

    def __call__(self, *arguments, files=(), check=True):
        command = [*self.compose, *[option for f in files for option in ("-f", str(f))],
                   *arguments]
        return run(command, self.project, self.env, check)

    def port(self, service, port, files=()):
        return int(self("port", service, str(port), files=files).stdout.strip().rsplit(":", 1)[1])

    def container(self, service, files=()):
        return self("ps", "--quiet", service, files=files).stdout.strip()


def candidate_files(project, scratch):
    """{name: compose override that runs web with that configuration, port 8000 published}."""
    files = {}
    for number, (name, settings) in enumerate(CANDIDATES.items()):
        config = Path(scratch) / f"gunicorn-{number}.py"
        config.write_text('exec(open("/app/gunicorn.conf.py").read())\n' + settings + "\n")
        override = Path(scratch) / f"compose-{number}.yaml"
        override.write_text(json.dumps({"services": {"web": {
            "ports": ["127.0.0.1::8000"],
            "volumes": [f"{config}:/bench/gunicorn.conf.py:ro"],
            "command": ["gunicorn", "--config", "/bench/gunicorn.conf.py", "config.wsgi"],
        }}}))
        files[name] = override
    return files


def caddy_files(project, scratch):
    """{name: compose override that runs Caddy with that Caddyfile and environment}."""
    shipped, files = (project / "Caddyfile").read_text(), {}
    for number, (name, (change, environment)) in enumerate(CADDY_CANDIDATES.items()):
        caddyfile = Path(scratch) / f"Caddyfile-{number}"
        caddyfile.write_text(change(shipped))
        assert name == "shipped Caddyfile" or caddyfile.read_text() != shipped or environment, \
            f"{name}: the Caddyfile has changed, the variant no longer applies"
        override = Path(scratch) / f"compose-caddy-{number}.yaml"
        override.write_text(json.dumps({"services": {"caddy": {
            "volumes": [f"{caddyfile}:/etc/caddy/Caddyfile:ro"], "environment": environment}}}))
        files[name] = override
    return files


def measure_caddy(stack, override, direct_port, seconds):
    """Caddy's req/s with this override, and its ratio to gunicorn's straight in this round;
    and the same ratio in the servers' CPU per request (gunicorn's straight, over gunicorn's
    and Caddy's through Caddy), which leaves out the load generator on the same CPUs."""
    stack("up", "--detach", "--wait", "--no-deps", "caddy", files=[override])
    web, caddy = (stack.container(service, files=[override]) for service in ("web", "caddy"))
    direct, direct_cpu = wrk_with_cpu(f"http://127.0.0.1:{direct_port}/admin/login/", seconds,
                                      [web], PROXIED)
    proxied, proxied_cpu = wrk_with_cpu(
        f"https://localhost:{stack.port('caddy', 443, [override])}/admin/login/", seconds,
        [web, caddy])
    return {"caddy": proxied, "ratio": proxied["rps"] / direct["rps"],
            "gunicorn_ms": proxied_cpu[web], "caddy_ms": proxied_cpu[caddy],
            "cpu_ratio": direct_cpu[web] / (proxied_cpu[web] + proxied_cpu[caddy])}


def measure(stack, override, seconds):
    started = time.perf_counter()
    stack("up", "--detach", "--wait", "--no-deps", "web", files=[override])
    ready = time.perf_counter() - started
    container = stack.container("web", files=[override])
    time.sleep(3)  # idle: the workers have started and settled
    idle = memory_mib(container)
    port = stack.port("web", 8000, [override])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/admin/login/", headers={"Host": "localhost", **PROXIED})
    status = connection.getresponse().status
    connection.close()
    assert status == 200, f"GET /admin/login/ answered {status}, not the page"
    direct = wrk(f"http://127.0.0.1:{port}/admin/login/", seconds, PROXIED)
    loaded = memory_mib(container)
    caddy = wrk(f"https://localhost:{stack.port('caddy', 443)}/admin/login/", seconds)
    return {"ready": ready, "idle": idle, "loaded": loaded, "direct": direct, "caddy": caddy}


def probe_cpu_ms(stack):
    """CPU time of one run of the image's HEALTHCHECK command, inside the web container."""
    test = json.loads(run(["docker", "inspect", "--format", "{{json .Config.Healthcheck.Test}}",
                           stack.container("web")], ".").stdout)
    command = test[1] if test[0] == "CMD-SHELL" else " ".join(map(repr_shell, test[1:]))
    script = f"time (for i in $(seq 20); do {command} >/dev/null || exit 1; done)"
    timing = stack("exec", "-T", "web", "bash", "-c", script).stderr
    user, system = (float(m) * 60 + float(s) for m, s in
                    re.findall(r"^(?:user|sys)\s+(\d+)m([\d.]+)s", timing, re.M))
    return (user + system) / 20 * 1000


def repr_shell(word):
    return "'" + word.replace("'", "'\\''") + "'"


def median(rounds, *keys):
    values = []
    for result in rounds:
        for key in keys:
            result = result[key]
        values.append(result)
    return statistics.median(values)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="of load per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="of every configuration")
    parser.add_argument("--up-runs", type=int, default=3, help="cold starts of the whole stack")
    arguments = parser.parse_args()
    results = {name: [] for name in CANDIDATES}
    caddy_results = {name: [] for name in CADDY_CANDIDATES}
    with tempfile.TemporaryDirectory() as scratch:
        run([sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), "-o", scratch],
            cwd=scratch)
        project = Path(scratch) / "my_project"
        write_production_env(project)
        # The backup service writes ./backups as HOST_UID: the owner of this run's files.
        env = dict(os.environ) | LOOPBACK_PORTS | {"HOST_UID": str(os.getuid()),
                                                   "HOST_GID": str(os.getgid())}
        stack = Stack(project, env)
        overrides = candidate_files(project, scratch)
        try:
            stack("build")
            up = []
            for _ in range(arguments.up_runs):
                started = time.perf_counter()
                stack("up", "--detach", "--wait")
                up.append(time.perf_counter() - started)
                stack("down", "--volumes")
            stack("up", "--detach", "--wait")
            probe = probe_cpu_ms(stack)
            proxies = caddy_files(project, scratch)
            for _ in range(arguments.rounds):
                for name, override in overrides.items():
                    results[name].append(measure(stack, override, arguments.seconds))
                stack("up", "--detach", "--wait", "--no-deps", "web", files=[overrides[SHIPPED]])
                port = stack.port("web", 8000, [overrides[SHIPPED]])
                for name, override in proxies.items():
                    caddy_results[name].append(measure_caddy(stack, override, port,
                                                             arguments.seconds))
        finally:
            stack("down", "--volumes", "--remove-orphans", "--rmi", "local", check=False)

    print(f"serving figures of the default project ({os.cpu_count()} CPUs; wrk -t2 -c32 "
          f"{arguments.seconds} s; medians of {arguments.rounds} rounds):")
    print(f"  {'configuration':42} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
          f"{'Caddy req/s':>11} {'p99 ms':>7} {'errors':>6} {'idle MiB':>8} {'loaded MiB':>10}")
    for name, rounds in results.items():
        print(f"  {name:42} {median(rounds, 'direct', 'rps'):7.0f} "
              f"{median(rounds, 'direct', 'p50'):7.1f} {median(rounds, 'direct', 'p99'):7.1f} "
              f"{max(r['direct']['errors'] for r in rounds):6d} "
              f"{median(rounds, 'caddy', 'rps'):11.0f} {median(rounds, 'caddy', 'p99'):7.1f} "
              f"{max(r['caddy']['errors'] for r in rounds):6d} "
              f"{median(rounds, 'idle'):8.0f} {median(rounds, 'loaded'):10.0f}")
    shipped = results[SHIPPED]
    ratio = median(shipped, 'caddy', 'rps') / median(shipped, 'direct', 'rps')
    print(f"  shipped through Caddy: {ratio:.2f} x straight to gunicorn")
    print("  Caddy, with the shipped gunicorn configuration (ratio: to straight to gunicorn in the "
          "same round):")
    for name, rounds in caddy_results.items():
        ratios = ", ".join(f"{result['ratio']:.2f}" for result in rounds)
        print(f"    {name:28} {median(rounds, 'caddy', 'rps'):7.0f} req/s, "
              f"p99 {median(rounds, 'caddy', 'p99'):6.1f} ms, "
              f"{max(r['caddy']['errors'] for r in rounds)} errors, "
              f"ratio {median(rounds, 'ratio'):.2f} (rounds: {ratios}); CPU per request "
              f"gunicorn {median(rounds, 'gunicorn_ms'):.2f} ms + Caddy "
              f"{median(rounds, 'caddy_ms'):.2f} ms, ratio {median(rounds, 'cpu_ratio'):.2f}")
    print("    CPU ratio: gunicorn's CPU per request straight over gunicorn's and Caddy's through "
          "Caddy (the capacity ratio when the clients are elsewhere)")
    print(f"  whole stack up to healthy (warm images): {spread(up)}")
    print(f"  health probe: {probe:.1f} ms of CPU per check")


if __name__ == "__main__":
    main()
