"""`.env.example`, rendered from the declarations: Django's variables (config/env.py) and the
ones below, which only Docker Compose{% if cookiecutter.swarm == "yes" %} and Swarm read{% else %} reads{% endif %}. Run by a test and a pre-commit hook; Django
never imports this module.

    python -m config.env_example --write    # rewrite .env.example
    python -m config.env_example --check    # exit 1 if it has drifted
"""

import argparse
import sys
from pathlib import Path

from config.env import VARIABLES
from config.envschema import (
    COUNT, HOST_NAME, INTEGER, PLACEHOLDER, PORT, TEXT, TIME_OF_DAY, Variable,
)

# Declared, though Django never reads them, so that .env.example documents them with the rest
# and a test can hold the compose files to the list: every variable they name is declared.
COMPOSE_VARIABLES = (
    Variable(
        "POSTGRES_APP_PASSWORD", TEXT, required_in_production=True, example=PLACEHOLDER,
        help="Password of the app's database role in production, not a superuser "
             "(deploy/compose.yaml, deploy/scripts/db-app-role.sh): migrations and the app connect "
             "with it.",
    ),
    Variable(
        "HOST_UID", INTEGER, default="1000",
        help="User ID the development container and the backup service run as, so files "
             "they write to bind mounts are yours (`id -u`).",
    ),
    Variable(
        "HOST_GID", INTEGER, default="1000",
        help="Group ID the development container and the backup service run as (`id -g`).",
    ),
    Variable(
        "WEB_PORT", PORT, default="8000",
        help="Port on 127.0.0.1 for the development server (0: any free port).",
    ),
{%- if cookiecutter.ipfs == "yes" %}
    Variable(
        "IPFS_GATEWAY_PORT", PORT, default="8080",
        help="Port on 127.0.0.1 for the development IPFS gateway (0: any free port).",
    ),
{%- endif %}
{%- if cookiecutter.notebooks == "yes" %}
    Variable(
        "NOTEBOOK_PORT", PORT, default="8888",
        help="Port on 127.0.0.1 for JupyterLab, the notebook service (0: any free port).",
    ),
    Variable(
        "JUPYTER_TOKEN", TEXT, example=PLACEHOLDER,
        help="Token JupyterLab asks for (the notebook service): generated into .env at "
             "creation, never committed.",
    ),
{%- endif %}
    Variable(
        "SITE_ADDRESS", HOST_NAME, default="{{ cookiecutter.domain_name }}",
        help="Host name Caddy serves over HTTPS: a public name gets a Let's Encrypt "
             "certificate, localhost one from Caddy's own CA.",
    ),
    Variable(
        "HTTP_PORT", PORT, default="80",
        help="Host port for HTTP, which redirects to HTTPS (0: any free port).",
    ),
    Variable(
        "HTTPS_PORT", PORT, default="443",
        help="Host port for HTTPS (0: any free port).",
    ),
{%- if cookiecutter.ipfs == "yes" %}
    Variable(
        "IPFS_SWARM_PORT", PORT, default="4001",
        help="Host port (TCP and UDP) where other IPFS nodes reach the production node "
             "(0: any free port).",
    ),
{%- endif %}
{%- if cookiecutter.swarm == "yes" %}
    Variable(
        "IMAGE", TEXT, example="registry.example.com/{{ cookiecutter.project_slug }}:sha-1a2b3c4",
        help="The image deploy/swarm-deploy.sh runs, from a registry "
             "(deploy/compose.yaml builds its own).",
    ),
{%- endif %}
    Variable(
        "BACKUP_TIME", TIME_OF_DAY, default="03:00",
        help="The backup service backs up the database once a day, after this time (UTC).",
    ),
    Variable(
        "BACKUP_KEEP_DAILY", COUNT, default="7",
        help="Retention: days kept, each by its newest backup (the last days that have one).",
    ),
    Variable(
        "BACKUP_KEEP_WEEKLY", INTEGER, default="4",
        help="Retention: weeks kept besides, each by its newest backup (ISO weeks, Monday to "
             "Sunday, UTC).",
    ),
)

ENV_EXAMPLE = Path(__file__).resolve().parent.parent / ".env.example"


def render():
    lines = [
        "# Every environment variable this project reads, rendered from config/env.py by",
        "# `python -m config.env_example --write`: edit that file, not this one.",
        "# Copy to .env and replace every change-me; the app refuses to start with one left in.",
    ]
    for variable in VARIABLES:
        lines += _entry(variable)
    lines += ["", "", "# --- Read by Docker Compose{% if cookiecutter.swarm == "yes" %} and Swarm{% endif %} (compose.yaml, deploy/), not by Django ---"]
    for variable in COMPOSE_VARIABLES:
        lines += _entry(variable)
    return "\n".join(lines) + "\n"


def _entry(variable):
    required = "; required in production" if variable.required_in_production else ""
    default = f"; default: {variable.default}" if variable.default else ""
    from_file = f"; or in a file: {variable.name}_FILE=path" if variable.secret else ""
    value = variable.default if variable.example is None else variable.example
    return [
        "",
        f"# {variable.help}",
        f"# ({variable.type.label}{default}{required}{from_file})",
        f"{variable.name}={value or ''}",
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m config.env_example",
                                     description=__doc__.split("\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="rewrite .env.example")
    action.add_argument("--check", action="store_true", help="exit 1 if it has drifted")
    arguments = parser.parse_args(argv)
    text = render()
    if arguments.write:
        ENV_EXAMPLE.write_text(text)
    elif not ENV_EXAMPLE.exists() or ENV_EXAMPLE.read_text() != text:
        sys.stderr.write(".env.example is out of date: run `python -m config.env_example --write`\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
