#!/bin/sh
# PLACEHOLDER for issue 22's init script (another change writes the real one at this path): the
# official image runs every /container-init.d/*.sh before the daemon, on every start. Offline:
# `ipfs config` writes the repo's config, which the daemon reads when it starts.
set -eu
ipfs config --json Gateway.NoFetch true  # serve this node's content only
ipfs config Provide.Strategy pinned  # announce what is pinned, nothing fetched in passing
ipfs config Datastore.StorageMax 10GB
