"""Every pinned package of every board's set has a binary wheel for that board (a release check).

For each target in device/install.py and each Python it supports, `pip download --only-binary=:all:
--no-deps` of each pinned line must find a wheel for the target's platform tags (its arch, glibc
from 2.17 up to the target's) on the package index alone: pip's configuration and extra indexes
are set aside. A second check resolves each wheel-only set with its dependencies (metadata only).
Packages a target takes from apt are not in its file, so they are not checked here.

Needs the network: `pytest -m release tests/test_wheels.py`.
"""
import os
import subprocess
import sys

import pytest
from packaging.requirements import Requirement

from device.install import REQUIREMENTS, TARGETS

pytestmark = pytest.mark.release


def platform_args(target) -> list:
    """--platform for every tag a pip on the target accepts: manylinux2014, manylinux_2_17..its glibc, linux."""
    arch = target.wheel_arch
    tags = [f"manylinux2014_{arch}", f"linux_{arch}"]
    tags += [f"manylinux_2_{minor}_{arch}" for minor in range(17, target.min_glibc[1] + 1)]
    return [arg for tag in tags for arg in ("--platform", tag)]


def pinned(target, python) -> list:
    """The target's requirement lines that apply on `python`, markers evaluated for the target.

    pip evaluates a requirement's markers for the Python running it, not --python-version's.
    """
    environment = {"python_version": python, "python_full_version": python + ".0",
                   "platform_machine": target.wheel_arch, "sys_platform": "linux", "platform_system": "Linux",
                   "implementation_name": "cpython", "platform_python_implementation": "CPython"}
    lines = []
    for line in (REQUIREMENTS / f"{target.name}.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(environment):
                lines.append(f"{requirement.name}{requirement.specifier}")
    return lines


def index_only_env() -> dict:
    """The environment without pip configuration: the package index alone, no extra index or links."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_CONSTRAINT")}
    return {**env, "PIP_CONFIG_FILE": os.devnull}   # PIP_CERT, if set, still lets pip reach the index


def pip(args, tmp_path, target, python) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "--only-binary=:all:",
           "--implementation", "cp", *platform_args(target), "--python-version", python]
    return subprocess.run(cmd, capture_output=True, text=True, env=index_only_env(), cwd=tmp_path, timeout=900)


def versions(target) -> list:
    return [f"{major}.{minor}" for major, minor in target.pythons]


WHEEL_CASES = [pytest.param(t, py, line, id=f"{t.name}-py{py}-{line}")
               for t in TARGETS for py in versions(t) for line in pinned(t, py)]


@pytest.mark.parametrize("target, python, line", WHEEL_CASES)
def test_pinned_package_has_a_wheel(target, python, line, tmp_path):
    proc = pip(["download", "--no-deps", "-q", "-d", str(tmp_path), line], tmp_path, target, python)
    assert proc.returncode == 0, f"{line}: no wheel for {target.name}, Python {python}:\n{proc.stderr[-1500:]}"
    assert [p.suffix for p in tmp_path.iterdir()] == [".whl"]


RESOLVE_CASES = [pytest.param(t, py, id=f"{t.name}-py{py}") for t in TARGETS if not t.apt for py in versions(t)]


@pytest.mark.parametrize("target, python", RESOLVE_CASES)
def test_set_resolves_with_its_dependencies_from_wheels(target, python, tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(pinned(target, python)) + "\n")
    proc = pip(["install", "--dry-run", "--ignore-installed", "-q", "--target", str(tmp_path / "t"),
                "-r", str(requirements)], tmp_path, target, python)
    assert proc.returncode == 0, f"{target.name}, Python {python}: the set does not resolve:\n{proc.stderr[-1500:]}"
