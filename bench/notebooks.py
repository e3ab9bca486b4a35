"""Print the notebook figures of the default project: the notebook image's size over the dev
image, the time from `docker compose up notebook` to a kernel that has queried the ORM, and the
time to execute the example notebook in that container.

    uv run python bench/notebooks.py [--runs N]

Needs a Docker engine with BuildKit and Compose v2. Everything it creates (a generated project in
a temporary directory, images, containers, networks, volumes) is removed at the end. Images are
built from the build cache when it has them: build times are not among these figures.
"""

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from containers import run, timed  # bench/containers.py: exit with the output on failure

TEMPLATE = Path(__file__).resolve().parent.parent
RUN = f"bench-{os.getpid()}-{secrets.token_hex(3)}"
# Inside the notebook container: a kernel as JupyterLab starts one (notebooks/startup.py runs
# first, through the image's PYTHONSTARTUP), then one query through the ORM.
KERNEL = """
import jupyter_client
manager, client = jupyter_client.manager.start_new_kernel(kernel_name="python3")
reply = client.execute_interactive("from my_project.notes.models import Note; Note.objects.count()",
                                   timeout=120)
assert reply["content"]["status"] == "ok", reply["content"]
manager.shutdown_kernel(now=True)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="cold starts to measure (default 3)")
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as scratch:
        run([sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), "-o", scratch],
            cwd=scratch)
        project = Path(scratch) / "my_project"
        env = dict(os.environ) | {"WEB_PORT": "0", "NOTEBOOK_PORT": "0",
                                  "HOST_UID": str(os.getuid()), "HOST_GID": str(os.getgid())}
        compose = ["docker", "compose", "-p", f"shipshape-{RUN}", "--profile", "notebook"]
        try:
            run([*compose, "build", "web", "notebook"], project, env)
            dev, notebook = (int(run(["docker", "image", "inspect", "--format", "{{.Size}}",
                                      f"shipshape-{RUN}-{service}"], project).stdout)
                             for service in ("web", "notebook"))
            starts, executions = [], []
            for _ in range(runs):
                started = time.perf_counter()
                run([*compose, "up", "--detach", "--wait", "notebook"], project, env)
                run([*compose, "exec", "-T", "notebook", "python", "-c", KERNEL], project, env)
                starts.append(time.perf_counter() - started)
                executions.append(timed([*compose, "exec", "-T", "notebook", "jupyter",
                                         "execute", "notebooks/explore_notes.ipynb"],
                                        project, env)[0])
                run([*compose, "down", "--volumes"], project, env)
        finally:
            subprocess.run([*compose, "down", "--volumes", "--remove-orphans", "--rmi", "local"],
                           cwd=project, env=env, capture_output=True, check=False)
    print(f"dev image          {dev / 1e6:7.0f} MB")
    print(f"notebook image     {notebook / 1e6:7.0f} MB  "
          f"(+{(notebook - dev) / 1e6:.0f} MB over dev)")
    print(f"cold start to a kernel that queried the ORM (up --wait, db and migrations "
          f"included): median {statistics.median(starts):.1f} s of {runs} "
          f"({', '.join(f'{value:.1f}' for value in starts)})")
    print(f"example notebook executed (jupyter execute, kernel start included): median "
          f"{statistics.median(executions):.1f} s "
          f"({', '.join(f'{value:.1f}' for value in executions)})")


if __name__ == "__main__":
    main()
