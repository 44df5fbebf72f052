"""device/install.py on faked board answers, and scripts/arm_results.py's reading of its own results.

Offline and fast: no pip run reaches the package index (tests/test_wheels.py does that).
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from device import install
from device.install import Facts, Unsupported, choose_target

REPO = Path(__file__).resolve().parents[1]


def load_script(path: Path):
    """A script of scripts/ as a module (scripts/ is no package)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


arm_results = load_script(REPO / "scripts" / "arm_results.py")

BOOKWORM = "Debian GNU/Linux 12 (bookworm)"


def facts(dpkg="arm64", machine="aarch64", bits=64, python=(3, 11), jetson=False, glibc=(2, 36), os_name=BOOKWORM):
    return Facts(dpkg_arch=dpkg, machine=machine, pointer_bits=bits, python=python, os_name=os_name,
                 jetson=jetson, glibc=glibc)


@pytest.mark.parametrize("answers, expected", [
    (facts(), "pi-os-64"),
    (facts(python=(3, 13), glibc=(2, 41)), "pi-os-64"),                     # trixie
    (facts(dpkg="armhf", machine="aarch64", bits=32), "pi-os-32"),          # 32-bit Pi OS, Pi 4/5 64-bit kernel
    (facts(dpkg="armhf", machine="armv7l", bits=32), "pi-os-32"),
    (facts(dpkg=None, machine="aarch64", bits=32), "pi-os-32"),             # no dpkg: the pointer size decides
    (facts(dpkg=None, machine="armv8l", bits=32), "pi-os-32"),
    (facts(dpkg=None, machine="aarch64", bits=64), "pi-os-64"),
    (facts(python=(3, 8), jetson=True, glibc=(2, 31), os_name="Ubuntu 20.04.6 LTS"), "jetpack-5"),
    (facts(python=(3, 10), jetson=True, glibc=(2, 35), os_name="Ubuntu 22.04.4 LTS"), "jetpack-6"),
    (facts(dpkg="amd64", machine="x86_64", python=(3, 10), glibc=(2, 35)), "x86_64"),
    (facts(dpkg="amd64", machine="x86_64", python=(3, 12), glibc=(2, 39)), "x86_64"),
    (facts(dpkg=None, machine="x86_64", python=(3, 11), glibc=None), "x86_64"),  # not glibc: pip decides
])
def test_target_detection(answers, expected):
    assert choose_target(answers).name == expected


@pytest.mark.parametrize("answers, words", [
    (facts(dpkg="armhf", machine="armv7l", bits=32, python=(3, 9), glibc=(2, 31)), "Python 3.9 on"),
    (facts(dpkg="armhf", machine="aarch64", bits=32, python=(3, 13), glibc=(2, 41)), "Python 3.13 on"),
    (facts(dpkg="amd64", machine="x86_64", python=(3, 14)), "Python 3.14 on"),
    (facts(python=(3, 9), glibc=(2, 31)), "Python 3.9 on"),
    (facts(python=(3, 11), jetson=True, glibc=(2, 35)), "on a Jetson"),
    (facts(dpkg="armhf", machine="armv7l", bits=32, glibc=(2, 31)), "glibc 2.31"),
    (facts(dpkg="i386", machine="x86_64", bits=32), "userland i386"),
    (facts(dpkg=None, machine="riscv64"), "userland riscv64"),
    (facts(dpkg="armhf", machine="armv6l", bits=32), "ARMv6"),
])
def test_unsupported_combinations_say_what_instead(answers, words):
    with pytest.raises(Unsupported) as err:
        choose_target(answers)
    message = str(err.value)
    assert words in message and "use" in message and "\n" not in message


def test_every_target_has_its_requirement_file_and_apt_packages_stay_out_of_it():
    for target in install.TARGETS:
        text = (install.REQUIREMENTS / f"{target.name}.txt").read_text()
        pins = [line.split("==")[0].strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
        assert target.runtime in pins
        for package in target.apt:   # python3-numpy -> numpy: taken from apt, so not pinned
            assert package.replace("python3-", "") not in " ".join(pins)


def test_requirements_device_is_the_x86_64_set():
    assert "-r device/requirements/x86_64.txt" in (REPO / "requirements-device.txt").read_text()


def test_probe_parsers():
    assert install.os_release('NAME="Ubuntu"\nVERSION_ID="20.04"\n# x\nPRETTY_NAME="Ubuntu 20.04.6 LTS"\n') == {
        "NAME": "Ubuntu", "VERSION_ID": "20.04", "PRETTY_NAME": "Ubuntu 20.04.6 LTS"}
    assert install.glibc_version("glibc 2.31") == (2, 31)
    assert install.glibc_version(None) is None and install.glibc_version("musl 1.2") is None
    assert isinstance(install.probe(), Facts)


@pytest.fixture
def bundle(tmp_path, monkeypatch):
    """A bundle folder holding a copy of device/requirements; install.py pointed at it."""
    device = tmp_path / "device"
    shutil.copytree(install.REQUIREMENTS, device / "requirements")
    monkeypatch.setattr(install, "DEVICE", device)
    monkeypatch.setattr(install, "REQUIREMENTS", device / "requirements")
    return tmp_path


def test_unsupported_exits_2_with_one_line_and_no_venv(bundle, capsys):
    rc = install.main([], facts=facts(dpkg="armhf", machine="armv7l", bits=32, python=(3, 9), glibc=(2, 31)))
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and err.startswith("install: Python 3.9")
    assert not (bundle / ".venv").exists()


def test_missing_apt_packages_give_the_apt_line(bundle, capsys):
    rc = install.main([], facts=facts(dpkg="armhf", bits=32),
                      find_spec=lambda name: None if name == "cv2" else object())
    err = capsys.readouterr().err
    assert rc == 2 and "sudo apt install python3-numpy python3-opencv python3-psutil" in err
    assert len(err.strip().splitlines()) == 1 and not (bundle / ".venv").exists()


def test_dry_run_names_the_set(bundle, capsys):
    assert install.main(["--dry-run"], facts=facts(dpkg="armhf", machine="aarch64", bits=32)) == 0
    assert "pi-os-32" in capsys.readouterr().out


def test_failed_pip_install_removes_the_venv_it_made(bundle, capsys):
    (bundle / "device" / "requirements" / "x86_64.txt").write_text("./no-such-package.whl\n")  # fails offline
    rc = install.main([], facts=facts(dpkg="amd64", machine="x86_64"))
    assert rc == 1 and "the venv it made is removed" in capsys.readouterr().err
    assert not (bundle / ".venv").exists()


def test_install_sh_on_an_unsupported_userland(tmp_path):
    shutil.copytree(REPO / "device", tmp_path / "device", ignore=shutil.ignore_patterns("__pycache__"))
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "dpkg").write_text("#!/bin/sh\necho i386\n")
    (fake / "dpkg").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "PYTHON": sys.executable}
    proc = subprocess.run(["sh", str(tmp_path / "device" / "install.sh")], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "userland i386" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / ".venv").exists()


# --- scripts/arm_results.py ---

def jsonl(path: Path, labels, extra=()):
    rows = [json.dumps({"frame": i, "label": label, "latency_ms": 1.0}) for i, label in enumerate(labels)]
    path.write_text("\n".join([*reversed(rows), *extra]) + "\n")   # out of order on purpose
    return path


def test_read_labels_orders_by_frame_and_skips_other_lines(tmp_path):
    log = jsonl(tmp_path / "a.jsonl", ["cat", "dog", "ship"], extra=['{"summary": 1}', ""])
    assert arm_results.read_labels(log) == ["cat", "dog", "ship"]
    (tmp_path / "bad.jsonl").write_text('{"frame": 0, "label": "cat"}\nnot json\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        arm_results.read_labels(tmp_path / "bad.jsonl")


def test_compare_and_top1():
    assert arm_results.compare(["a", "b", "c"], ["a", "x", "c"]) == {
        "host_frames": 3, "frames": 3, "labels_equal": 2, "first_differing_frames": [1]}
    assert arm_results.compare(["a", "b"], ["a"])["frames"] == 1
    assert arm_results.top1(["a", "b"], ["a", "a"]) == 0.5
    assert arm_results.top1(["a"], ["a", "a"]) is None


def emulated_dir(tmp_path, labels, install_rc="0"):
    run = tmp_path / "arm64"
    (run / "profile").mkdir(parents=True)
    (run / "install.rc").write_text(install_rc + "\n")
    (run / "install.json").write_text(json.dumps({"target": "pi-os-64", "python": "3.11.2", "packages": {
        "ai-edge-litert": {"version": "2.3.0", "from": "wheel"}}}))
    for run_name in arm_results.RUNS:
        jsonl(run / f"{run_name}.jsonl", labels)
        (run / f"{run_name}.rc").write_text("0\n")
    (run / "profile.rc").write_text("0\n")
    (run / "profile" / "report.json").write_text(json.dumps({
        "runtime": {"name": "litert"}, "board": {"machine": "aarch64"}, "bundle": {"eval_images": 2},
        "subnets": [{"accuracy": 0.5}]}))
    return run


def test_target_result_and_pass(tmp_path):
    host = {"video": ["cat", "dog"], "images": ["cat", "dog"]}
    result = arm_results.target_result(emulated_dir(tmp_path, ["cat", "dog"]), host, truth=["cat", "cat"])
    assert result["images"]["labels_equal"] == 2 and result["images"]["top1"] == 0.5
    assert result["images"]["host_top1"] == 0.5 and result["profile"]["runtime"] == "litert"
    assert arm_results.passed(result)
    differing = arm_results.target_result(emulated_dir(tmp_path / "b", ["cat", "cat"]), host, truth=["cat", "cat"])
    assert not arm_results.passed(differing) and differing["video"]["first_differing_frames"] == [1]


def test_failed_install_is_reported_not_raised(tmp_path):
    run = tmp_path / "armhf"
    run.mkdir()
    (run / "install.rc").write_text("2\n")
    result = arm_results.target_result(run, {"video": ["a"], "images": ["a"]}, truth=["a"])
    result["passed"] = arm_results.passed(result)
    assert not result["passed"] and result["video"]["frames"] == 0 and result["profile"]["exit"] is None
    summary = {"command": "scripts/check_arm.sh", "bundle": "b", "subnets": 3, "eval_images": 1, "eval_total": 1, "qemu": "10.0.2",
               "host_runtime": "ai-edge-litert 2.3.0", "targets": {"armhf": result}}
    row = [line for line in arm_results.markdown(summary).splitlines() if line.startswith("| armhf")][0]
    assert "failed (exit 2)" in row and row.endswith("| no |")


def test_install_py_parses_as_python_3_8():
    """It runs under the board's system python3, 3.8 on JetPack 5."""
    import ast
    ast.parse((REPO / "device" / "install.py").read_text(), feature_version=(3, 8))


def test_pick_spreads_over_the_eval_set():
    assert arm_results.pick(500, 100)[:3] == [0, 5, 10] and len(arm_results.pick(500, 100)) == 100
    assert arm_results.pick(3, 10) == [0, 1, 2]
