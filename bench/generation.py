"""Print how long `cookiecutter` takes to generate the default project, and its size.

    uv run python bench/generation.py [--runs N]
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent.parent


def generate_once(output_dir):
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE),
                    "-o", str(output_dir)], check=True)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as scratch:
        seconds = [generate_once(Path(scratch) / str(run)) for run in range(runs)]
        project = Path(scratch) / "0" / "my_project"
        files = [path for path in project.rglob("*") if path.is_file()]
        lines = sum(len(path.read_text().splitlines()) for path in files)
        lock_lines = len((project / "uv.lock").read_text().splitlines())
    print(f"generation of the default project, {runs} runs "
          "(cookiecutter CLI, process start included):")
    print(f"  median {statistics.median(seconds):.2f} s, min {min(seconds):.2f} s, "
          f"max {max(seconds):.2f} s")
    print(f"default project: {len(files)} files, {lines} lines "
          f"({lines - lock_lines} without uv.lock)")


if __name__ == "__main__":
    main()
