#!/bin/sh
# The IPFS node's own settings (docs/ipfs.md): it serves this project's files, and only
# them. Kubo's official image runs every /container-init.d/*.sh before it starts the daemon, on
# every start: the compose files mount this script there, so a line changed here takes effect at
# the next start. No daemon runs yet, so `ipfs config` edits the repo's config file itself.
# POSIX sh: the image has no bash.
set -eu

# The gateway answers from what this node holds: a CID it does not have is a 404 at once,
# never fetched from the public network (Kubo's default), stored here and served as this site's.
ipfs config --json Gateway.NoFetch true

# Whatever serves the gateway (Caddy adds the same{% if cookiecutter.kubernetes == "yes" %}; a Kubernetes Ingress cannot{% endif %}): an uploaded
# page runs no script (sandbox), and a file is taken as the type it is served with, never as
# what its bytes look like (nosniff).
ipfs config --json Gateway.HTTPHeaders \
  '{"Content-Security-Policy": ["sandbox"], "X-Content-Type-Options": ["nosniff"]}'

# Announce to the network only what the app pinned, the uploads (Kubo's default is every block
# the node holds).
ipfs config Provide.Strategy pinned

# The repo's declared size (`ipfs repo stat` reports it). Kubo enforces it only through its
# automatic garbage collection (`daemon --enable-gc`), which stays off: it would delete what a
# backup restore has added back and not pinned yet. What bounds the disk is that the node
# stores nothing but uploads (NoFetch above), that an upload is at most IPFS_MAX_UPLOAD_SIZE,
# and that the app collects garbage as soon as the last row with a CID is deleted (uploads/models.py).
ipfs config Datastore.StorageMax 10GB

echo "ipfs-config.sh: gateway serves local content only, announces pinned content only"
