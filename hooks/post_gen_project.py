"""Write the project's local secrets into .env, and remove what the chosen options exclude."""

import json
import os
import re
import secrets
import shutil
import tomllib
from pathlib import Path

ANSWERS = json.loads({{ cookiecutter | jsonify | tojson }})
SLUG = ANSWERS["project_slug"]


def write_env_file(path):
    """Secrets go to .env only: untracked (.gitignore), readable by the owner alone."""
    path.write_text(
        "# Local development settings and secrets, generated with this project.\n"
        "# Never commit this file. Every variable is explained in .env.example.\n"
        "DEBUG=true\n"
        f"SECRET_KEY={secrets.token_urlsafe(64)}\n"
        "# The database's password, once: compose creates the database with it, and DATABASE_URL\n"
        f"# (unset) defaults to postgres://{SLUG}:<it>@localhost:5432/{SLUG}.\n"
        f"POSTGRES_PASSWORD={secrets.token_urlsafe(24)}\n"
        "# Production only (deploy/compose.yaml): the app's own database role, not a superuser.\n"
        f"POSTGRES_APP_PASSWORD={secrets.token_urlsafe(24)}\n"
        "# Your IDs, for the development container.\n"
        f"HOST_UID={getattr(os, 'getuid', lambda: 1000)()}\n"
        f"HOST_GID={getattr(os, 'getgid', lambda: 1000)()}\n"
        + ("# Links to uploads point at the development gateway (production: the site's own).\n"
           "IPFS_GATEWAY_URL=http://127.0.0.1:8080\n" if ANSWERS["ipfs"] == "yes" else "")
        + ("# JupyterLab asks for this token (the notebook service, docs/notebooks.md).\n"
           f"JUPYTER_TOKEN={secrets.token_urlsafe(32)}\n" if ANSWERS["notebooks"] == "yes" else "")
    )
    os.chmod(path, 0o600)


def remove_unchosen_files(root):
    if ANSWERS["kubernetes"] == "no":
        # First: the other options' removals below skip what went with deploy/kubernetes.
        shutil.rmtree(root / "deploy/kubernetes")
        for path in ("docs/kubernetes.md", "deploy/scripts/kustomization.yaml"):
            (root / path).unlink()
        prune_lock(root / "uv.lock", "kubernetes")
        # CI's job, from its comment to the blank line after it (the workflow is copied
        # unrendered: no Jinja there).
        ci = root / ".github/workflows/ci.yml"
        ci.write_text(re.sub(r"^  # deploy/kubernetes,.*?\n\n", "", ci.read_text(),
                             flags=re.MULTILINE | re.DOTALL))
    if ANSWERS["swarm"] == "no":
        for path in ("deploy/swarm.yaml", "deploy/swarm-deploy.sh", "docs/swarm.md"):
            (root / path).unlink()
    if ANSWERS["license"] == "Proprietary":
        (root / "LICENSE").unlink()
    if ANSWERS["notebooks"] == "no":
        (root / "docs/notebooks.md").unlink()
        shutil.rmtree(root / "notebooks")
        prune_lock(root / "uv.lock", "notebook")
    if ANSWERS["ipfs"] == "no":
        shutil.rmtree(root / SLUG / "uploads")
        for path in ("deploy/scripts/ipfs-config.sh", "deploy/scripts/kustomization.yaml",
                     "deploy/kubernetes/base/ipfs.yaml"):
            (root / path).unlink(missing_ok=True)
        prune_lock(root / "uv.lock", dependencies=["httpx"])
        (root / "docs/ipfs.md").unlink()
        # CI's Kubo service and its URL (the workflow is copied unrendered: no Jinja there).
        ci = root / ".github/workflows/ci.yml"
        ci.write_text(re.sub(r"^      ipfs:\n(?: {8}.*\n)+|^      IPFS_API_URL: .*\n", "",
                             ci.read_text(), flags=re.MULTILINE))

    if ANSWERS["tasks"] == "no":
        shutil.rmtree(root / SLUG / "worker")
        (root / "docs/tasks.md").unlink()
        (root / "deploy/kubernetes/base/worker.yaml").unlink(missing_ok=True)
        prune_lock(root / "uv.lock", dependencies=["cronsim", "django-tasks-db"])


def prune_lock(path, group=None, dependencies=()):
    """Remove a dependency group, or main dependencies (by name), from uv.lock, as `uv lock`
    would once pyproject.toml has no such group or dependency: their entries in the project's
    own lists, and every package nothing left reaches.
    Generation is offline, so uv cannot re-lock; and there is no TOML writer here, so the file
    is edited as text, one `[[package]]` block at a time, from what tomllib reads in it."""
    text = path.read_text()
    packages = tomllib.loads(text)["package"]
    root = next(package for package in packages
                if "." in (package["source"].get("virtual"), package["source"].get("editable")))
    wanted = [*(dependency for dependency in root.get("dependencies", [])
                if dependency["name"] not in dependencies),
              *(dependency for name, listed in (root.get("optional-dependencies", {})
                                                | root.get("dev-dependencies", {})).items()
                if name != group for dependency in listed)]
    followed = {((root["name"], root["version"]), None)}  # (package, extra or None)
    while wanted:
        dependency = wanted.pop()
        for package in packages:
            if package["name"] != dependency["name"] \
                    or dependency.get("version", package["version"]) != package["version"]:
                continue
            key = (package["name"], package["version"])
            for extra in (None, *dependency.get("extra", [])):
                if (key, extra) not in followed:
                    followed.add((key, extra))
                    wanted += package.get("dependencies", []) if extra is None \
                        else package.get("optional-dependencies", {}).get(extra, [])
    reached = {key for key, _ in followed}
    head, *blocks = re.split(r"^(?=\[\[package\]\]$)", text, flags=re.MULTILINE)
    nothing = "(?!)"  # a pattern that matches nowhere
    group_list = re.compile(rf"^{re.escape(group)} = \[(?:[^\n]*\]\n|\n.*?^\]\n)" if group
                            else nothing, re.MULTILINE | re.DOTALL)
    # A main dependency's line in `dependencies` and in `requires-dist` (one a line in lists of
    # more than one, as uv writes them). Concatenated: this file is a Jinja template.
    dependency_line = re.compile('^    \\{ name = "(' + "|".join(map(re.escape, dependencies))
                                 + ')"[ ,].*\n' if dependencies else nothing, re.MULTILINE)
    # The project's default groups, without this one: a line only when not uv's default.
    defaults = [name for name in root.get("default-groups", ["dev"]) if name != group]
    defaults_line = "" if defaults == ["dev"] else f"default-groups = {json.dumps(defaults)}\n"
    kept = [re.sub(r"^default-groups = .*\n", defaults_line,
                   dependency_line.sub("", group_list.sub("", block)), flags=re.MULTILINE)
            if package["name"] == root["name"] else without_extras(block, package, followed)
            for block in blocks
            for package in tomllib.loads(block)["package"]
            if (package["name"], package["version"]) in reached]
    # Forks in the resolution that only the group's packages needed: a lock without any
    # package resolved per platform has none.
    if not any("resolution-markers" in package for package in packages
               if (package["name"], package["version"]) in reached):
        head = re.sub(r"^resolution-markers = \[\n.*?^\]\n", "", head,
                      flags=re.MULTILINE | re.DOTALL)
    path.write_text(head + "".join(kept))


def without_extras(block, package, followed):
    """A package's block without the extras that only the removed group asked for."""
    key = (package["name"], package["version"])
    unreached = [extra for extra in package.get("optional-dependencies", {})
                 if (key, extra) not in followed]
    for extra in unreached:
        block = re.sub(rf"^{re.escape(extra)} = \[(?:[^\n]*\]\n|\n.*?^\]\n)", "", block,
                       flags=re.MULTILINE | re.DOTALL)
    if unreached and len(unreached) == len(package["optional-dependencies"]):
        block = block.replace("[package.optional-dependencies]\n\n", "", 1)
    return block


if __name__ == "__main__":
    root = Path.cwd()
    write_env_file(root / ".env")
    remove_unchosen_files(root)
