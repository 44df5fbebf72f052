"""The daemon end to end with a real tiny bundle: a generated video, SIGTERM, bad input, a bundle
that is missing or tampered with, and device/ running where torch & co. cannot be imported."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from device.flags import parse_budget, run_cli
from device.service import camera
from tests.test_sources import corrupt_frames, write_video

REPO = Path(__file__).resolve().parents[1]
TFLRT_PYTHON = REPO / ".venv-tflrt" / "bin" / "python"
# One interpreter thread: on a shared, oversubscribed CI machine a multi-threaded TFLite pool
# spins and waits (tflite-runtime 2.14 measured ~1000x slower with 2 threads there).
BOARD = ["--board", "x86_64", "--threads", "1"]
FIELDS = {"time", "frame", "label", "score", "entropy", "exit_subnet", "latency_ms", "budget_ms",
          "router_control", "cpu_load", "temperature_c", "drops", "bad_frames"}
# Runs a script with torch, tensorflow, litert_torch, host and converters made unimportable.
BLOCKED_RUN = """
import importlib.abc, runpy, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'torch', 'tensorflow', 'litert_torch', 'host', 'converters'}:
            raise ImportError(f'{name} is blocked: device/ must not import it')
sys.meta_path.insert(0, Block())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """12 frames, of which 2 cannot be decoded."""
    path = write_video(tmp_path_factory.mktemp("video") / "clip.avi", frames=12)
    corrupt_frames(path, [4, 8])
    return path


@pytest.fixture(scope="module")
def unpacked_bundle(tiny_bundle, tmp_path_factory):
    """The tiny bundle as a board sees it: model/ beside a copy of this repository's device/."""
    root = tmp_path_factory.mktemp("board") / "bundle"
    shutil.copytree(Path(tiny_bundle) / "model", root / "model")
    for folder in ("device", "profiles"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", "reports"))
    return root


@pytest.fixture
def restore_signals():
    """main() installs SIGINT/SIGTERM handlers; give pytest its own back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def clean_env():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DISPLAY", "WAYLAND_DISPLAY",
                                                           "NOTIFY_SOCKET")}
    return env


def daemon(args, python=sys.executable, cwd=REPO, blocked=False, **kwargs):
    script = str(REPO / "device" / "run_camera.py") if cwd == REPO else str(Path(cwd) / "device" / "run_camera.py")
    prefix = [python, "-c", BLOCKED_RUN] if blocked else [python]
    return prefix + [script, *args], dict(cwd=cwd, env=clean_env(), text=True, **kwargs)


def read_log(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_end_to_end_on_video_inside_an_unpacked_bundle_without_torch(unpacked_bundle, video, tmp_path):
    log = tmp_path / "frames.jsonl"
    cmd, kw = daemon(["--source", str(video), "--budget", "40ms", "--log", str(log), "--show",
                      *BOARD], cwd=unpacked_bundle, blocked=True)
    done = subprocess.run(cmd, capture_output=True, timeout=120, **kw)
    assert done.returncode == 0, done.stderr
    lines = read_log(log)
    assert len(lines) == 10 and [r["frame"] for r in lines] == list(range(10))
    assert all(FIELDS <= set(r) for r in lines)
    assert lines[-1]["bad_frames"] == 2 and lines[-1]["drops"] == 0
    assert all(r["budget_ms"] == 40.0 and 1 <= r["exit_subnet"] for r in lines)
    assert "warning: --show ignored: no display" in done.stderr
    assert "done: 10 frames" in done.stderr and "Traceback" not in done.stderr
    assert "INFO: " not in done.stderr  # the runtime's own lines are left out


def test_a_paced_video_plays_at_its_frame_rate_and_verbose_shows_the_runtime(tiny_bundle, video, tmp_path):
    """--fps auto: the 12-frame, 10 fps clip takes about its 1.2 s; --verbose keeps the runtime's lines."""
    log = tmp_path / "frames.jsonl"
    cmd, kw = daemon(["--bundle", str(tiny_bundle), "--source", str(video), "--fps", "auto", "--log", str(log),
                      "--verbose", *BOARD])
    done = subprocess.run(cmd, capture_output=True, timeout=120, **kw)
    assert done.returncode == 0, done.stderr
    lines = read_log(log)
    assert len(lines) + lines[-1]["drops"] == 10  # every good frame answered or dropped as late
    assert lines[-1]["time"] - lines[0]["time"] >= 0.8 * (len(lines) - 1) / 10
    assert "paced at 10 fps" in done.stderr and "INFO: Created TensorFlow Lite XNNPACK" in done.stderr


@pytest.mark.skipif(not TFLRT_PYTHON.exists(), reason=".venv-tflrt (tflite-runtime 2.14, numpy 1.26) not set up")
def test_runs_in_tflite_runtime_with_numpy_1(unpacked_bundle, video, tmp_path):
    cmd, kw = daemon(["--source", str(video), "--runtime", "tflite-runtime", "--policy", "fixed:2",
                      "--log", "-", "--budget", "0.05s", *BOARD],
                     python=str(TFLRT_PYTHON), cwd=unpacked_bundle, blocked=True)
    done = subprocess.run(cmd, capture_output=True, timeout=120, **kw)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == 10 and {r["exit_subnet"] for r in lines} == {2}
    assert "runtime tflite-runtime" in done.stderr


def test_sigterm_finishes_the_frame_flushes_and_exits_0(tiny_bundle, video, tmp_path):
    log = tmp_path / "frames.jsonl"
    cmd, kw = daemon(["--bundle", str(tiny_bundle), "--source", str(video), "--loop", "--log", str(log),
                      "--budget", "40", *BOARD])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 20):
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    text = log.read_text()
    assert text.endswith("\n")
    last = json.loads(text.splitlines()[-1])  # complete JSON, not a torn line
    assert FIELDS <= set(last)
    assert "SIGTERM received" in stderr and "done:" in stderr


def test_a_log_reader_that_goes_away_stops_the_daemon_without_a_traceback(tiny_bundle, video):
    """`run_camera.py --log - | head -1`: the pipe closes after one line; the daemon stops, exit 0."""
    cmd, kw = daemon(["--bundle", str(tiny_bundle), "--source", str(video), "--loop", "--log", "-",
                      "--budget", "40", *BOARD])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    try:
        json.loads(proc.stdout.readline())
        proc.stdout.close()  # what head does after its line
        stderr = proc.stderr.read()
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "closed the pipe; stopping" in stderr and "Traceback" not in stderr


def test_bad_budget_is_one_line_and_exit_2_in_a_fresh_process(tiny_bundle):
    cmd, kw = daemon(["--bundle", str(tiny_bundle), "--budget", "abc"])
    done = subprocess.run(cmd, capture_output=True, timeout=60, **kw)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: argument --budget: --budget 'abc' is not a positive time such as 40ms, 0.04s or 40 (milliseconds) "
        "(see run_camera.py --help)"]


@pytest.mark.parametrize("value", ["abc", "-5ms", "0", "0ms", "40us", ""])
def test_bad_budget_values(value, capsys, restore_signals):
    assert run_cli(camera.main, ["--budget", value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: argument --budget:")


@pytest.mark.parametrize("text, seconds", [("40ms", 0.040), ("0.04s", 0.040), ("40", 0.040), (" 2.5ms", 0.0025)])
def test_budget_forms(text, seconds):
    assert parse_budget(text) == pytest.approx(seconds)


def run_main(args, capsys):
    code = run_cli(camera.main, args)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def test_missing_bundle_names_the_path(tmp_path, capsys, restore_signals):
    code, err = run_main(["--bundle", str(tmp_path / "nowhere"), *BOARD], capsys)
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: ") and str(tmp_path / "nowhere") in err[0]


def test_tampered_bundle_names_the_file(tiny_bundle, tmp_path, capsys, restore_signals):
    copy = tmp_path / "bundle"
    shutil.copytree(Path(tiny_bundle) / "model", copy / "model")
    target = copy / "model" / "subnet_2.tflite"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    code, err = run_main(["--bundle", str(copy), *BOARD], capsys)
    assert code == 2 and len(err) == 1
    assert "subnet_2.tflite" in err[0] and "sha256" in err[0]


def test_unknown_source_lists_forms(tiny_bundle, capsys, restore_signals):
    code, err = run_main(["--bundle", str(tiny_bundle), "--source", "webcam", *BOARD], capsys)
    assert code == 2 and "accepted forms: a camera index (0), picamera2, csi://N" in err[-1]


def test_unwritable_log_fails_before_the_loop(tiny_bundle, video, tmp_path, capsys, restore_signals):
    code, err = run_main(["--bundle", str(tiny_bundle), "--source", str(video), *BOARD,
                          "--log", str(tmp_path / "no" / "such" / "dir" / "log.jsonl")], capsys)
    assert code == 2 and err[-1].startswith("error: cannot write the log file")


def test_bad_policy_lists_forms(tiny_bundle, capsys, restore_signals):
    code, err = run_main(["--bundle", str(tiny_bundle), "--policy", "fixed:99", *BOARD], capsys)
    assert code == 2 and "accepted forms" in err[-1]
