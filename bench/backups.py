"""Print the backup figures of the default project's production stack: how long `backup now` and
`backup restore` take, and the backup's size, for a database with 100,000 notes and 20 uploads
of 5 MB on the IPFS node.

    uv run python bench/backups.py [--rows N] [--files N] [--file-mb N] [--runs N]

Needs a Docker engine with BuildKit and Compose v2. Everything it creates (a generated project in
a temporary directory, images, containers, networks, volumes, backups) is removed at the end.
Times are of the commands as the README gives them (`docker compose run --rm backup ...`), so
they include starting the container; `backup list` on the same stack shows that part alone.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# bench/containers.py, beside this script
from containers import RUN, TEMPLATE, run, timed, write_production_env


def summary(seconds):
    return (f"median {statistics.median(seconds):.2f} s (min {min(seconds):.2f}, "
            f"max {max(seconds):.2f}, {len(seconds)} runs)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="notes (default 100,000)")
    parser.add_argument("--files", type=int, default=20, help="uploads on IPFS (default 20)")
    parser.add_argument("--file-mb", type=int, default=5, help="size of each (default 5 MB)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each command (default 3)")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        run([sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), "-o", scratch],
            cwd=scratch)
        project = Path(scratch) / "my_project"
        write_production_env(project)
        # The backup service writes as HOST_UID: the owner of backups/, as on a server.
        owner = project.stat()
        env = dict(os.environ) | {"HTTP_PORT": "0", "HTTPS_PORT": "0",
                                  "HOST_UID": str(owner.st_uid), "HOST_GID": str(owner.st_gid)}
        prod = ["docker", "compose", "-p", f"shipshape-{RUN}", "-f", "deploy/compose.yaml"]
        backup = [*prod, "run", "--rm", "backup"]
        try:
            run([*prod, "build"], project, env)
            run([*prod, "up", "--detach", "--wait"], project, env)
            insert = ("INSERT INTO my_project_note (id, title, body, created) "
                      "SELECT gen_random_uuid(), 'Note ' || n, repeat(md5(n::text), 4), now() "
                      f"FROM generate_series(1, {arguments.rows}) AS n")
            psql = [*prod, "exec", "-T", "db", "psql", "--username", "my_project", "--quiet"]
            run([*psql, "--command", insert], project, env)
            database = run([*psql, "--tuples-only", "--command",
                            "SELECT pg_size_pretty(pg_database_size('my_project'))"],
                           project, env).stdout.strip()
            # Uploads through the app's storage: added and pinned on the node.
            run([*prod, "exec", "-T", "web", "python", "manage.py", "shell", "-c",
                 "import os; from django.core.files.base import ContentFile; "
                 "from my_project.uploads.models import Upload\n"
                 f"for n in range({arguments.files}):\n"
                 f"    Upload(file=ContentFile(os.urandom({arguments.file_mb} * 2**20), "
                 "name=f'file{n}.bin')).save()"], project, env)

            overhead = [timed([*backup, "list"], project, env)[0] for _ in range(arguments.runs)]
            backups, names = [], []
            for _ in range(arguments.runs):
                seconds, result = timed([*backup, "now"], project, env)
                backups.append(seconds)
                names.append(re.search(r"^backup (\S+):", result.stdout, re.MULTILINE)[1])
            size = (project / "backups" / names[-1] / "database.dump").stat().st_size
            files = sum(path.stat().st_size
                        for path in (project / "backups" / names[-1] / "ipfs").iterdir())

            run([*prod, "stop", "web", "backup"], project, env)
            replace = []
            for _ in range(arguments.runs):
                seconds, result = timed([*backup, "restore", "--force"], project, env)
                replace.append(seconds)
            restored = re.search(r"^\s+my_project_note\s+(\d+)$", result.stdout, re.MULTILINE)[1]
            assert int(restored) == arguments.rows, result.stdout
            fresh = []
            for _ in range(arguments.runs):
                run([*prod, "down", "--volumes"], project, env)
                seconds, result = timed([*backup, "restore"], project, env)
                assert f"({arguments.files} added back" in result.stdout, result.stdout
                fresh.append(seconds)
        finally:
            subprocess.run([*prod, "down", "--volumes", "--remove-orphans", "--rmi", "local"],
                           cwd=project, env=env, capture_output=True, check=False)

    mb = 1_000_000
    print(f"backups of the default project, {arguments.rows:,} notes "
          f"(database {database}) and {arguments.files} uploads of {arguments.file_mb} MB "
          f"on IPFS ({os.cpu_count()} CPUs):")
    print(f"  backup size: database.dump {size / mb:.1f} MB, ipfs/ {files / mb:.1f} MB "
          "(hard links to the previous backup's copies after the first)")
    print(f"  first backup now (dump, files read from the node and hashed again, checksums, "
          f"read back): {backups[0]:.2f} s")
    print(f"  next backups (the files hard-linked): {summary(backups[1:])}")
    print(f"  restore --force (replaces the database; the node pins the files):"
          f" {summary(replace)}")
    print(f"  restore after down -v (an empty database and node; the files added back):"
          f" {summary(fresh)}")
    print(f"  `run --rm backup list` alone:     {summary(overhead)} (the container's start)")


if __name__ == "__main__":
    main()
