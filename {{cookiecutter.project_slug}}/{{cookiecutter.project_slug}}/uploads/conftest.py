import pytest


@pytest.fixture(scope="session")
def ipfs_node():
    """The Kubo node at IPFS_API_URL: a test that needs it asks for this fixture, and the run
    checks once, before any test, that it answers (pytest_collection_modifyitems below)."""
    from {{ cookiecutter.project_slug }}.uploads.storage import ipfs_storage

    return ipfs_storage()


def pytest_collection_modifyitems(config, items):
    """Without a node, stop the run with one line that says where IPFS_API_URL points and how
    to start one, rather than a ConnectError traceback per IPFS test. Stop, not skip: a run
    that skipped them would pass with uploads untested. Tests that need no node (selected
    with -k or by file) run without one."""
    needing = [item for item in items if "ipfs_node" in item.fixturenames]
    if not needing or config.option.collectonly:
        return
    from {{ cookiecutter.project_slug }}.uploads.storage import ipfs_storage

    storage = ipfs_storage()
    if storage.problem():
        pytest.exit(f"No IPFS node answers at IPFS_API_URL={storage.api_url}, which "
                    f"{len(needing)} tests need. Start one: docker run -d --rm -p "
                    "127.0.0.1:5001:5001 ipfs/kubo:release (IPFS_API_URL=http://localhost:5001), "
                    "or run the tests in Docker: docker compose run --rm web pytest",
                    returncode=pytest.ExitCode.USAGE_ERROR)
