"""gunicorn's settings for the production container (Dockerfile `prod` target).

gunicorn reads this file at start (`gunicorn --config gunicorn.conf.py config.wsgi`); the build's
smoke test loads it too (`--check-config`), so a mistake here fails the image build.
"""

import os

# Listen on every interface of the container; only the reverse proxy (Caddy, on the compose
# network) can reach it, since compose.prod.yaml publishes no port for the web service.
bind = "0.0.0.0:8000"

# The usual 2 × CPUs + 1 sync workers, counting the CPUs this process may run on (a cpuset
# limit), not all of the host's.
workers = 2 * (os.process_cpu_count() or 1) + 1

# A request that takes longer than this gets its worker killed and restarted.
timeout = 30
# On SIGTERM (`docker stop`, `docker compose stop`) gunicorn stops accepting connections and
# gives the requests in flight this long to finish. compose.prod.yaml's stop_grace_period
# (35s) is longer, so Docker never has to SIGKILL it.
graceful_timeout = 25

# Caddy terminates TLS and sets X-Forwarded-Proto; it is the only client that can connect (see
# bind), and its address on the compose network is not fixed, so trust the header from any peer.
forwarded_allow_ips = "*"

# Access and error logs to stdout/stderr, where `docker compose logs` collects them.
accesslog = "-"
errorlog = "-"

# The worker heartbeat files go to memory: the container's root file system is read-only.
worker_tmp_dir = "/dev/shm"
# No control socket (gunicornc): it would need a writable home directory, and nothing uses it.
control_socket_disable = True
