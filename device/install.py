"""Install a bundle's board runtime: pick this board's requirement set, make .venv, install it.

    sh device/install.sh [--dry-run] [--report FILE]      (or: python3 device/install.py ...)

Runs under the system python3 (3.8 or later, standard library only) and makes the venv with it.
The target follows from what the board answers, not from pip's markers: a Pi 4/5 on 32-bit
Raspberry Pi OS boots a 64-bit kernel, so `uname -m` says aarch64 while the userland (and
every wheel it can load) is armhf. The userland's word size comes from `dpkg
--print-architecture`, else from this Python's pointer size; a Jetson is known by
/etc/nv_tegra_release or the nvidia-l4t-core package. Every set in device/requirements/ is
installed with --only-binary=:all:, so a missing wheel fails in seconds instead of starting a
source build; where the package index has no wheel (numpy, OpenCV and psutil on armhf), the
set takes Debian's packages through a --system-site-packages venv.

An unsupported combination gets one line naming it and what to use instead, exit 2, before
anything is written; a failed install removes the venv it made.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DEVICE = Path(__file__).resolve().parent
REQUIREMENTS = DEVICE / "requirements"
APT_MODULES = {"python3-numpy": "numpy", "python3-opencv": "cv2", "python3-psutil": "psutil"}


@dataclass(frozen=True)
class Target:
    """One install target: its requirement file (name.txt), what it runs on, what it needs."""
    name: str
    board: str
    wheel_arch: str      # the platform_machine of its wheels' tags
    min_glibc: tuple     # the oldest glibc its wheels load on (the named OS's)
    pythons: tuple       # supported (major, minor)
    runtime: str         # the TFLite runtime's distribution name
    apt: tuple = ()      # Debian packages it takes from apt instead of wheels


TARGETS = (
    Target("pi-os-64", "Raspberry Pi OS 64-bit (bookworm) or other aarch64 Linux", "aarch64", (2, 36),
           ((3, 11), (3, 12), (3, 13)), "ai-edge-litert"),
    Target("pi-os-32", "Raspberry Pi OS 32-bit (bookworm, armhf)", "armv7l", (2, 36), ((3, 11),),
           "tflite-runtime", tuple(APT_MODULES)),
    Target("jetpack-5", "Jetson, JetPack 5 (Ubuntu 20.04)", "aarch64", (2, 31), ((3, 8),), "tflite-runtime"),
    Target("jetpack-6", "Jetson, JetPack 6 (Ubuntu 22.04)", "aarch64", (2, 35), ((3, 10),), "ai-edge-litert"),
    Target("x86_64", "x86_64 Linux", "x86_64", (2, 28), ((3, 10), (3, 11), (3, 12), (3, 13)), "ai-edge-litert"),
)
BY_NAME = {t.name: t for t in TARGETS}


class Unsupported(Exception):
    """This board/Python combination has no install; the message says what to use instead."""


@dataclass(frozen=True)
class Facts:
    """What the board answered: the inputs of choose_target, faked in tests."""
    dpkg_arch: str | None     # `dpkg --print-architecture`, None without dpkg
    machine: str              # `uname -m`: the kernel's, aarch64 under a 32-bit Pi OS on a Pi 4/5
    pointer_bits: int         # this Python's pointer size: the userland's word size
    python: tuple             # (major, minor)
    os_name: str              # PRETTY_NAME from /etc/os-release
    jetson: bool
    glibc: tuple | None       # (major, minor), None where the C library is not glibc


def userland(facts: Facts) -> str:
    """The userland's Debian architecture: arm64, armhf or amd64."""
    if facts.dpkg_arch:
        arch = facts.dpkg_arch
    elif facts.machine in ("aarch64", "arm64", "armv8l", "armv7l"):
        arch = "arm64" if facts.pointer_bits == 64 else "armhf"
    elif facts.machine in ("x86_64", "amd64") and facts.pointer_bits == 64:
        arch = "amd64"
    else:
        arch = facts.machine
    if arch == "armhf" and facts.machine == "armv6l":
        raise Unsupported("armhf on an ARMv6 CPU (Pi Zero/1) is not supported: no TFLite runtime has "
                          "a wheel for it; use a Pi with an ARMv7 or later CPU (Pi 2 v1.2 and up)")
    if arch not in ("arm64", "armhf", "amd64"):
        raise Unsupported(f"userland {arch} ({facts.machine}, {facts.pointer_bits}-bit) is not supported: "
                          f"use an arm64, armhf (32-bit Raspberry Pi OS) or amd64 system")
    return arch


def _versions(pythons) -> str:
    return ", ".join(f"{major}.{minor}" for major, minor in pythons)


def choose_target(facts: Facts) -> Target:
    """The target for these answers, or Unsupported naming the combination and what to use."""
    arch = userland(facts)
    py = f"{facts.python[0]}.{facts.python[1]}"
    on = f"{facts.os_name}, " if facts.os_name else ""
    if arch == "arm64" and facts.jetson:
        jetpack = {t.pythons[0]: t for t in (BY_NAME["jetpack-5"], BY_NAME["jetpack-6"])}
        if facts.python not in jetpack:
            raise Unsupported(f"Python {py} on a Jetson ({on}arm64) is not supported: use the system "
                              f"python3, Python 3.8 on JetPack 5 or Python 3.10 on JetPack 6")
        target = jetpack[facts.python]
    else:
        target = BY_NAME[{"arm64": "pi-os-64", "armhf": "pi-os-32", "amd64": "x86_64"}[arch]]
        if facts.python not in target.pythons:
            instead = {"pi-os-64": "Raspberry Pi OS 64-bit bookworm's python3 (3.11)",
                       "pi-os-32": "Raspberry Pi OS 32-bit bookworm's python3 (3.11), or Pi OS 64-bit "
                                   "on a Pi 3/4/5",
                       "x86_64": "Python " + _versions(target.pythons)}[target.name]
            raise Unsupported(f"Python {py} on {on}{arch} is not supported: {target.name}'s wheels need Python "
                              f"{_versions(target.pythons)}; use {instead}")
    if facts.glibc is not None and facts.glibc < target.min_glibc:
        raise Unsupported(f"glibc {facts.glibc[0]}.{facts.glibc[1]} on {on}{arch} is too old for {target.name}, "
                          f"whose wheels need glibc {target.min_glibc[0]}.{target.min_glibc[1]}; use "
                          f"{target.board}")
    return target


def _answer(cmd) -> str | None:
    """A command's stripped stdout, None when it is missing or fails."""
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              universal_newlines=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def os_release(text: str) -> dict:
    """/etc/os-release's KEY=value lines as a dict, quotes removed."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip().strip('"\'') for key, value in pairs}


def glibc_version(answer: str | None) -> tuple | None:
    """(2, 36) from os.confstr's 'glibc 2.36'; None for another C library."""
    if not answer or not answer.startswith("glibc "):
        return None
    parts = answer.split()[1].split(".")
    return int(parts[0]), int(parts[1])


def probe() -> Facts:
    """Ask this board."""
    try:
        release = os_release(Path("/etc/os-release").read_text())
    except OSError:
        release = {}
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):
        libc = None
    jetson = Path("/etc/nv_tegra_release").exists() or \
        _answer(["dpkg-query", "-W", "-f=${Status}", "nvidia-l4t-core"]) == "install ok installed"
    return Facts(dpkg_arch=_answer(["dpkg", "--print-architecture"]), machine=platform.machine(),
                 pointer_bits=8 * struct.calcsize("P"), python=tuple(sys.version_info[:2]),
                 os_name=release.get("PRETTY_NAME", ""), jetson=jetson, glibc=glibc_version(libc))


def check_apt(target: Target, find_spec) -> None:
    """Raise Unsupported when the Debian packages the target takes from apt are missing or unfit."""
    missing = [pkg for pkg in target.apt if find_spec(APT_MODULES[pkg]) is None]
    if missing:
        raise Unsupported(f"{target.name} takes {', '.join(target.apt)} from apt, and {', '.join(missing)} "
                          f"{'is' if len(missing) == 1 else 'are'} missing: run sudo apt install "
                          f"{' '.join(target.apt)} python3-venv, then this again")
    if "python3-numpy" in target.apt:
        import numpy
        version = tuple(int(p) for p in numpy.__version__.split(".")[:3] if p.isdigit())
        if not (1, 23, 2) <= version < (2,):
            raise Unsupported(f"apt's numpy is {numpy.__version__}, but {target.runtime} needs numpy >= 1.23.2 "
                              f"and < 2: use Raspberry Pi OS bookworm (numpy 1.24)")


# Run inside the new venv: what it imports, its version, and whether it came from the venv (a
# wheel) or the system's site-packages (apt).
VERIFY = r"""
import importlib, json, os, sys
from importlib import metadata
out = {}
for dist, module in json.loads(sys.argv[1]):
    mod = importlib.import_module(module)
    try:
        version = metadata.version(dist)
    except metadata.PackageNotFoundError:
        version = getattr(mod, "__version__", "?")
    inside = os.path.realpath(mod.__file__).startswith(os.path.realpath(sys.prefix) + os.sep)
    out[dist] = {"version": version, "from": "wheel" if inside else "apt"}
print(json.dumps(out))
"""
RUNTIME_MODULES = {"ai-edge-litert": "ai_edge_litert.interpreter", "tflite-runtime": "tflite_runtime.interpreter"}


def install(target: Target, bundle: Path, report: Path | None, system_site: bool = False) -> int:
    """Make bundle/.venv (unless there) and install the target's set; remove a venv it made on failure."""
    venv = bundle / ".venv"
    python = venv / "bin" / "python"
    made = not python.exists()
    requirements = REQUIREMENTS / f"{target.name}.txt"
    steps = []
    if made:
        steps.append([sys.executable, "-m", "venv", *(["--system-site-packages"] if target.apt or system_site else []), str(venv)])
    steps.append([str(python), "-m", "pip", "install", "--disable-pip-version-check", "--only-binary=:all:",
                  "-r", str(requirements)])
    packages = [(target.runtime, RUNTIME_MODULES[target.runtime]), ("numpy", "numpy"),
                ("opencv-python-headless", "cv2"), ("psutil", "psutil")]
    steps.append([str(python), "-c", VERIFY, json.dumps(packages)])
    print(f"install: {target.name} ({target.board}) into {venv}", flush=True)
    for step in steps:
        proc = subprocess.run(step, stdout=subprocess.PIPE if step is steps[-1] else None, universal_newlines=True)
        if proc.returncode != 0:
            if made:
                shutil.rmtree(venv, ignore_errors=True)
            what = "making the venv" if step[1:3] == ["-m", "venv"] else \
                f"installing {requirements.relative_to(bundle)}" if "pip" in step else "importing what it installed"
            print(f"install: {what} failed (exit {proc.returncode}, above)" +
                  ("; the venv it made is removed" if made else ""), file=sys.stderr)
            return 1
    installed = json.loads(proc.stdout)
    print("install: " + ", ".join(f"{d} {i['version']} ({i['from']})" for d, i in installed.items()))
    print("install: done; run .venv/bin/python device/run_camera.py")
    if report:
        report.write_text(json.dumps({"target": target.name, "python": platform.python_version(),
                                      "packages": installed}, indent=1) + "\n")
    return 0


def main(argv=None, facts: Facts | None = None, find_spec=None) -> int:
    parser = argparse.ArgumentParser(description="Install this bundle's board runtime into .venv.")
    parser.add_argument("--dry-run", action="store_true", help="print the target and exit")
    parser.add_argument("--report", type=Path, help="write what was installed to FILE (JSON)")
    parser.add_argument("--system-site-packages", action="store_true",
                        help="let the venv see apt's packages (Picamera2 on a Pi, JetPack's GStreamer OpenCV)")
    args = parser.parse_args(argv)
    bundle = DEVICE.parent
    try:
        target = choose_target(facts or probe())
        if target.apt and not args.dry_run:
            import importlib.util
            check_apt(target, find_spec or importlib.util.find_spec)
    except Unsupported as err:
        print(f"install: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(f"install: {target.name} ({target.board}): {REQUIREMENTS.relative_to(bundle) / (target.name + '.txt')}"
              + (f", with {' '.join(target.apt)} from apt" if target.apt else ""))
        return 0
    return install(target, bundle, args.report, args.system_site_packages)


if __name__ == "__main__":
    sys.exit(main())
