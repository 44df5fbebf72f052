"""Shared fixtures. The data comes from ../shared/datasets (never committed to the project)."""
import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures_bundle"]

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    return Path(os.environ.get("DYNEDGE_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def cifar_tar() -> Path:
    """The whole of CIFAR-10 as the shared .tar.gz of an ImageFolder tree."""
    path = shared_dir() / "datasets" / "cifar10-jpg.tar.gz"
    if not path.is_file():
        pytest.fail(f"{path} is missing: the tests need ../shared/datasets/cifar10-jpg.tar.gz "
                    "(or DYNEDGE_SHARED pointing at a folder that has it)")
    return path


SLOW_FIXTURES = {"tiny_bundle", "cifar_tar"}  # a real build or the whole data set


def pytest_collection_modifyitems(config, items):
    """Mark `slow` every test that needs a real build or the data set; the rest are fast unit
    tests (`pytest -m "not slow"`, well under a minute). `release` tests need the network and
    run only when a -m expression names them."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    if "release" not in (config.getoption("markexpr") or ""):
        left_out = [item for item in items if "release" in item.keywords]
        if left_out:
            config.hook.pytest_deselected(items=left_out)
            items[:] = [item for item in items if "release" not in item.keywords]
