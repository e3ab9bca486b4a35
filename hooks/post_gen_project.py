"""Write the project's local secrets into .env, and remove what the chosen options exclude."""

import json
import os
import secrets
from pathlib import Path

ANSWERS = json.loads({{ cookiecutter | jsonify | tojson }})
SLUG = ANSWERS["project_slug"]


def write_env_file(path):
    """Secrets go to .env only: untracked (.gitignore), readable by the owner alone."""
    database_password = secrets.token_urlsafe(24)
    path.write_text(
        "# Local development settings and secrets, generated with this project.\n"
        "# Never commit this file. Every variable is explained in .env.example.\n"
        "DEBUG=true\n"
        f"SECRET_KEY={secrets.token_urlsafe(64)}\n"
        f"DATABASE_URL=postgres://{SLUG}:{database_password}@localhost:5432/{SLUG}\n"
        "# Docker Compose: the same password for the database it starts (compose builds the\n"
        "# containers' DATABASE_URL from it), and your IDs for the development container.\n"
        f"POSTGRES_PASSWORD={database_password}\n"
        f"HOST_UID={getattr(os, 'getuid', lambda: 1000)()}\n"
        f"HOST_GID={getattr(os, 'getgid', lambda: 1000)()}\n"
    )
    os.chmod(path, 0o600)


def remove_unchosen_files(root):
    if ANSWERS["license"] == "Proprietary":
        (root / "LICENSE").unlink()


if __name__ == "__main__":
    root = Path.cwd()
    write_env_file(root / ".env")
    remove_unchosen_files(root)
