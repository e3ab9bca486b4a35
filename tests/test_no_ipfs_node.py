"""A generated project's tests with no IPFS node: one line that says where IPFS_API_URL points
and how to start a node, and a failed run; not a ConnectError traceback per IPFS test."""

import socket
import subprocess

import pytest

from conftest import generate, run, tool_environment

pytestmark = pytest.mark.xdist_group("no-ipfs-node")


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # free again once closed: nothing listens there


def test_the_projects_tests_without_a_node_stop_with_one_clear_line(tmp_path):
    project = generate(tmp_path)  # the default answers: ipfs=yes
    run(["uv", "sync", "--locked", "--quiet"], cwd=project)
    api_url = f"http://127.0.0.1:{closed_port()}"
    # No database either: the run stops before any test would create the test database.
    result = subprocess.run(
        ["uv", "run", "--locked", "pytest", "-p", "no:cacheprovider"], cwd=project,
        env=tool_environment() | {"DEBUG": "true", "IPFS_API_URL": api_url,
                                  "DATABASE_URL": "postgres://nobody@127.0.0.1:1/nothing"},
        text=True, capture_output=True, timeout=600, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, output
    said = [line for line in output.splitlines() if "No IPFS node answers" in line]
    assert len(said) == 1, output
    assert f"at IPFS_API_URL={api_url}," in said[0]
    assert "docker run -d --rm -p 127.0.0.1:5001:5001 ipfs/kubo:release" in said[0]
    assert "ConnectError" not in output and "Traceback" not in output, output
    assert len(output.splitlines()) < 15, output
