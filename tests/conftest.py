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
