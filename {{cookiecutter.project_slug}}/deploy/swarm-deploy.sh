#!/usr/bin/env bash
# Deploys or updates a Swarm stack: deploy/compose.yaml with the overlay deploy/swarm.yaml,
# merged by Docker Compose (2.24.4 or later: !reset, !override) and deployed by `docker stack
# deploy`, which fills in ${IMAGE} & co. from this shell's environment, never from deploy/.env.
# Usage: IMAGE=registry.example.com/app:sha-1a2b3c4 deploy/swarm-deploy.sh [OPTIONS] STACK
# (OPTIONS: docker stack deploy's, e.g. --with-registry-auth).
set -euo pipefail
cd "$(dirname "$0")"
stack=$(docker compose --env-file /dev/null -f compose.yaml -f swarm.yaml config --no-normalize --no-interpolate)
# `name:` is Compose's own; a stack is named on the command line.
sed '/^name:/d' <<<"$stack" | docker stack deploy --compose-file - "$@"
