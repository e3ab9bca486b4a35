"""gunicorn's settings for the production container (Dockerfile `prod` target).

gunicorn reads this file at start (`gunicorn --config config/gunicorn.conf.py config.wsgi`,
from the project directory); the build's smoke test loads it too (`--check-config`), so a
mistake here fails the image build. The choices below were measured with Shipshape's bench/serving.py.
"""

import os
import sys

from config.env import InvalidEnvironment, load

# Its two variables only, read and checked as the settings read them (config/env.py): a bad
# WEB_CONCURRENCY stops the start with the same message, and the settings load once, later.
try:
    ENV = load(os.environ, only={"WEB_CONCURRENCY", "WEB_THREADS"})
except InvalidEnvironment as problems:
    sys.exit(str(problems))

# Listen on every interface of the container; only the reverse proxy (Caddy, on the compose
# network) can reach it, since deploy/compose.yaml publishes no port for the web service.
bind = "0.0.0.0:8000"

# A few processes with threads: a thread waiting on the database or the network lets another
# serve, and threaded workers keep Caddy's connections alive between requests (sync workers
# close each one). WEB_CONCURRENCY processes × WEB_THREADS threads.
worker_class = "gthread"
workers = ENV["WEB_CONCURRENCY"]
threads = ENV["WEB_THREADS"]
# Longer than Caddy keeps an idle upstream connection (30 s, Caddyfile), so Caddy never sends a
# request on a connection gunicorn is closing.
keepalive = 60

# Import Django once, in the master, before forking: the workers share those pages instead of
# each importing its own copy (a third of the memory), and a broken app fails at start.
preload_app = True

# A request that takes longer than this gets its worker killed and restarted.
timeout = 30
# On SIGTERM (`docker stop`, `docker compose stop`) gunicorn stops accepting connections and
# gives the requests in flight this long to finish. deploy/compose.yaml's stop_grace_period
# (35s) is longer, so Docker never has to SIGKILL it.
graceful_timeout = 25

# Caddy terminates TLS and sets X-Forwarded-Proto; it is the only client that can connect (see
# bind), and its address on the compose network is not fixed, so trust the header from any peer.
forwarded_allow_ips = "*"

# Errors to stderr, where `docker compose logs` collects them. Requests are logged once, by
# Caddy (JSON, with the client's address and the request ID that Django sees as X-Request-ID):
# a second access log here would cost a tenth of the throughput.
errorlog = "-"

# The worker heartbeat files go to memory: the container's root file system is read-only.
worker_tmp_dir = "/dev/shm"
# No control socket (gunicornc): it would need a writable home directory, and nothing uses it.
control_socket_disable = True
