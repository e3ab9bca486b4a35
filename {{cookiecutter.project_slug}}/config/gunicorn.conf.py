"""gunicorn's settings for the production container (Dockerfile `prod` target).

gunicorn reads this file at start (`gunicorn --config config/gunicorn.conf.py config.wsgi`,
from the project directory); the build's smoke test loads it too (`--check-config`), so a
mistake here fails the image build. The choices below were measured with Shipshape's bench/serving.py.
"""

import os
import sys

from config import logs
from config.env import InvalidEnvironment, load

# Its few variables only, read and checked as the settings read them (config/env.py): a bad
# WEB_CONCURRENCY stops the start with the same message, and the settings load once, later.
try:
    ENV = load(os.environ, only={"WEB_CONCURRENCY", "WEB_THREADS", "DEBUG", "LOG_FORMAT",
                                 "LOG_LEVEL"})
except InvalidEnvironment as problems:
    sys.exit(str(problems))

# Only Caddy reaches it: deploy/compose.yaml publishes no port for web.
bind = "0.0.0.0:8000"

# Threads: one serves while another waits on I/O, and Caddy's connections stay open (sync closes).
worker_class = "gthread"
workers = ENV["WEB_CONCURRENCY"]
threads = ENV["WEB_THREADS"]
# Over Caddy's idle upstream time (30 s, Caddyfile): no request on a connection being closed.
keepalive = 60

# Django imported once, before the fork: workers share that memory; a broken app fails at start.
preload_app = True

timeout = 30
# After SIGTERM, what requests in flight get; deploy/compose.yaml's stop_grace_period is longer.
graceful_timeout = 25

# Caddy sets X-Forwarded-Proto, from no fixed address on the compose network (see bind).
forwarded_allow_ips = "*"

# gunicorn's own lines (start, workers, timeouts) on stdout, formatted as Django's are
# (config/logs.py, LOG_FORMAT). No access log: Caddy writes one, with the request's ID, and
# Django a line per request with the same ID; gunicorn's would be a third.
logconfig_dict = logs.logging_config(ENV["LOG_FORMAT"], ENV["DEBUG"], ENV["LOG_LEVEL"], {
    "gunicorn.error": {"handlers": ["stdout"], "propagate": False},
    # logconfig_dict turns gunicorn's access log on: off again, with nowhere to go.
    "gunicorn.access": {"handlers": [], "propagate": False, "level": "CRITICAL"},
})
loglevel = ENV["LOG_LEVEL"].lower()

# Read-only root file system: heartbeat files in memory; no control socket (it needs a home).
worker_tmp_dir = "/dev/shm"
control_socket_disable = True
