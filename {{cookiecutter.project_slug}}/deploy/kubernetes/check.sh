#!/usr/bin/env bash
# The offline checks of these manifests (CI's kubernetes job runs them; docs/kubernetes.md):
# the production overlay renders (kustomize), every object it renders is valid for
# a current Kubernetes (kubernetes-validate, strict), and checkov finds nothing but the
# exceptions written down in .checkov.yaml. Needs kustomize, uv, and overlays/production/secrets.env
# (a copy of secrets.env.example will do). CHECKOV overrides the checkov command.
set -euo pipefail
cd "$(dirname "$0")"
rendered=$(mktemp --suffix .yaml)
trap 'rm -f "$rendered"' EXIT
kustomize build overlays/production >"$rendered"
uv run --locked --only-group kubernetes kubernetes-validate --strict --quiet "$rendered"
# checkov pins schema<=0.7.5, the app needs a newer one: it cannot share the project's lock.
read -ra checkov <<<"${CHECKOV:-uvx checkov@3.3.30}"
"${checkov[@]}" --config-file .checkov.yaml --file "$rendered"
