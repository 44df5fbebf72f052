"""host/build.py end to end in a subprocess, and its one-line refusals (exit 2, no traceback)."""
import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures_bundle import BUILD_LOG, TINY_ARGS

REPO = Path(__file__).resolve().parents[1]


def run_build(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "host" / "build.py"), *args], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in errors[0]


def test_build_end_to_end_prints_stages_and_summary(tiny_bundle):
    """The tiny bundle itself came from `python host/build.py ...` in a subprocess."""
    log = (tiny_bundle.parents[1] / BUILD_LOG).read_text()
    for stage in ("[1/5] train", "[2/5] calibrate", "[3/5] convert", "[4/5] verify", "[5/5] bundle"):
        assert stage in log
    assert "fp32 ms" in log and "fp32 KB" in log and "MMACs cum" in log
    assert f"bundle: {tiny_bundle}" in log
    assert tiny_bundle.with_name(tiny_bundle.name + ".tar.gz").is_file()
    convert_log = tiny_bundle.parents[1] / "checkpoint" / "convert.log"
    assert f"the converter's own output goes to {convert_log}" in log
    assert "INFO: [" not in log and "FutureWarning" not in log  # the converter's and runtime's lines: in the file
    assert convert_log.stat().st_size > 0


def test_existing_bundle_is_refused_without_force(tiny_bundle, cifar_tar):
    proc = run_build(*TINY_ARGS, "--data", str(cifar_tar), "--out", str(tiny_bundle.parent))
    assert_one_line_error(proc, str(tiny_bundle), "--force")


def test_checkpoint_of_another_arch_is_refused(tiny_bundle, cifar_tar, tmp_path):
    proc = run_build("--arch", "mobilenet", "--checkpoint", str(tiny_bundle.parents[1] / "checkpoint"),
                     "--data", str(cifar_tar), "--out", str(tmp_path))
    assert_one_line_error(proc, "resnet", "--arch")
    assert list(tmp_path.iterdir()) == []


def test_the_old_dist_flag_is_refused_with_a_pointer(tmp_path):
    """--out is the bundle root in build.py now, as every tool's --out is its result's folder."""
    proc = run_build("--dist", str(tmp_path))
    assert_one_line_error(proc, "--dist is now --out", "--checkpoint-out")
    assert list(tmp_path.iterdir()) == []
